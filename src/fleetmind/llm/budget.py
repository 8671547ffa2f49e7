"""The prompt budget: a request whose prompt cannot fit an expert's context is refused before any expert sees it.

llama-server answers an over-long prompt only after tokenizing all of it (a 100,000-message request kept every
expert busy for over 90 s), so the size is judged here, without a tokenizer: at most :data:`MAX_MESSAGES`
messages, and an estimate of the prompt's tokens (:data:`CHARS_PER_TOKEN` characters per token, plus a few per
message for the chat template) no larger than the context. The estimate is an average, not a bound: a prompt
near the limit may be refused that would just have fit, never one far below it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_CONTEXT_TOKENS",
    "MAX_MESSAGES",
    "PromptTooLargeError",
    "check_prompt",
    "estimate_tokens",
]

#: The context of the stack's experts (``llama-server -c``) unless configured otherwise.
DEFAULT_CONTEXT_TOKENS = 4096
#: More messages than this is never a conversation a 4k-32k context can hold.
MAX_MESSAGES = 1024
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


class PromptTooLargeError(ValueError):
    """The prompt cannot fit the context; the message says by how much."""


def estimate_tokens(texts: Iterable[str]) -> int:
    """Estimated prompt tokens of messages whose text is ``texts`` (one string per message)."""
    total = 0
    for text in texts:
        total += math.ceil(len(text) / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE
    return total


def check_prompt(texts: list[str], *, context_tokens: int = DEFAULT_CONTEXT_TOKENS) -> int:
    """The estimate, or PromptTooLargeError when there are too many messages or it exceeds ``context_tokens``."""
    if len(texts) > MAX_MESSAGES:
        raise PromptTooLargeError(f"too many messages: {len(texts)} (at most {MAX_MESSAGES})")
    estimate = estimate_tokens(texts)
    if estimate > context_tokens:
        raise PromptTooLargeError(
            f"the prompt is about {estimate} tokens, more than the expert's context of {context_tokens} tokens; "
            "shorten the conversation"
        )
    return estimate
