"""The one llama-server client: streamed chat for the agent, one-shot chat for tools, vision and the supervisor.

:class:`ExpertClient` streams one chat completion from a llama-server's OpenAI-compatible
``/v1/chat/completions``, asking for usage so token counts are the expert's own; a prompt too large for the
context (:mod:`fleetmind.llm.budget`) is refused before it is sent. The stream is read with aiohttp, each on its own
connection (:mod:`fleetmind.llm.session`: every token crosses it, and httpx cost the expert measurably more).

:func:`complete` (and :func:`complete_sync` for threads) asks for one whole answer, optionally held to a JSON schema
(llama-server's ``json_schema``, a grammar: the model cannot answer anything else). Every call sends the stack's
service secret as ``Authorization: Bearer``: experts run with it as their API key (:mod:`fleetmind.security.service`).

Exceptions::

    ExpertError (LlmError, CodedError)     one call to one expert failed ("expert_error")
      +-- ExpertUnavailableError           could not connect, answered 5xx, or timed out waiting
      +-- ExpertRejectedError              answered 4xx: the request itself is wrong ("invalid_request")
      +-- ExpertProtocolError              the expert answered something that is not a chat completion
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import httpx

from fleetmind.contracts.errors import AgentErrorCode, CodedError
from fleetmind.contracts.protocol import AgentRequest, Usage
from fleetmind.llm import LlmError
from fleetmind.llm.budget import DEFAULT_CONTEXT_TOKENS, PromptTooLargeError, check_prompt
from fleetmind.llm.loop_guard import LoopGuard
from fleetmind.llm.session import LoopSession
from fleetmind.security.service import SecretSource, bearer

Source = Literal["env", "registry"]
log = logging.getLogger(__name__)


class ExpertError(LlmError, CodedError):
    """One call to one expert failed."""

    code: AgentErrorCode = "expert_error"


class ExpertUnavailableError(ExpertError):
    """The expert could not be reached, answered with an error status, or did not answer in time."""


class ExpertRejectedError(ExpertError):
    """The expert refused the request (HTTP 4xx), e.g. an unsupported ``response_format``."""

    code: AgentErrorCode = "invalid_request"


class ExpertProtocolError(ExpertError):
    """The expert's answer is not a well-formed chat completion."""


@dataclass(frozen=True)
class Expert:
    """One expert endpoint (one llama-server)."""

    name: str
    url: str
    source: Source = "env"
    # The expert's own system prompt (from its registry meta), used when the conversation brings none: small
    # models such as SmolLM2 answer far better with one.
    system_prompt: str | None = None
    # What the expert is good at (registry meta ``description``), for routing by meaning.
    description: str | None = None
    # The placement class of the node it runs on (registry meta ``node_class``: avx512, avx2, avx, sse42, legacy).
    node_class: str | None = None
    # The expert's generation defaults (registry meta ``generation``, from its profile in experts.yaml): sampling
    # fields of a chat-completion body, applied where the request gives none.
    generation: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class TextDelta:
    """A piece of text the expert generated."""

    text: str


@dataclass(frozen=True)
class Completion:
    """The end of a completion: why it stopped and the expert's own token counts."""

    finish_reason: str
    usage: Usage


StreamItem = TextDelta | Completion

# The longest answer when neither the caller nor the expert says: no answer runs until the context is full.
DEFAULT_MAX_TOKENS = 1024
# Fields an expert's defaults never set: they belong to the request itself.
_BODY_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})
_OPENAI_REPETITION = frozenset({"frequency_penalty", "presence_penalty"})
_LLAMA_REPETITION = frozenset(
    {"repeat_penalty", "repeat_last_n", "dry_multiplier", "dry_base", "dry_allowed_length", "dry_sequence_breakers"}
)
# How much of an error body goes into an error message: enough to read, never a whole page.
_ERROR_BODY_LIMIT = 500
# Statuses that say the request itself is wrong; anything else (429, 5xx, 404 from a non-llama server) is the
# expert's trouble and worth trying elsewhere.
_REJECTED_STATUSES = frozenset({400, 413, 422})


def completion_payload(
    request: AgentRequest,
    *,
    model: str,
    system_prompt: str | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body for ``request``: messages, sampling, streaming.

    ``system_prompt`` leads the conversation when the caller sent no system message of its own. Sampling is the
    expert's ``defaults`` overridden by every field the caller set (as OpenAI's API lets each be set per request);
    a caller who sets an OpenAI repetition penalty takes over repetition control, so the expert's own (llama.cpp's
    ``repeat_penalty`` and DRY, which OpenAI's API cannot name) are left out. ``max_tokens`` is never unbounded:
    without the caller's or the expert's, :data:`DEFAULT_MAX_TOKENS` applies.
    """
    messages = [m.model_dump(exclude_none=True) for m in request.messages]
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    asked = request.params.model_dump(exclude_none=True)
    expert_defaults = {k: v for k, v in (defaults or {}).items() if k not in _BODY_FIELDS}
    if asked.keys() & _OPENAI_REPETITION:
        expert_defaults = {k: v for k, v in expert_defaults.items() if k not in _LLAMA_REPETITION}
    payload.update(expert_defaults)
    payload.update(asked)
    payload.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    return payload


def _usage_from(chunk: dict[str, Any]) -> Usage | None:
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        return Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    # llama.cpp also reports its timings, which carry the same counts; used if usage was not sent.
    timings = chunk.get("timings")
    if isinstance(timings, dict) and "prompt_n" in timings:
        return Usage(
            # prompt_n counts only the tokens evaluated now; cache_n the ones reused from the prompt cache.
            prompt_tokens=int(timings.get("prompt_n") or 0) + int(timings.get("cache_n") or 0),
            completion_tokens=int(timings.get("predicted_n") or 0),
        )
    return None


class ExpertClient:
    """Streams chat completions from llama-servers over one shared HTTP connection pool."""

    def __init__(
        self,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        secret: SecretSource | None = None,
        loop_guard: Callable[[], LoopGuard] | None = LoopGuard,
    ) -> None:
        """``loop_guard`` makes the guard each answer is watched by (:mod:`fleetmind.llm.loop_guard`); None: none."""
        self._loop_guard = loop_guard
        if connect_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError("expert timeouts must be positive")
        self._secret = secret or SecretSource()
        if context_tokens < 1:
            raise ValueError("context_tokens must be positive")
        self.context_tokens = context_tokens
        # The read timeout bounds every silence, the wait for the first token included, so a hung expert fails
        # over instead of holding the request until its overall deadline.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
        self._http = LoopSession(timeout, force_close=True)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stream_chat(self, expert: Expert, request: AgentRequest) -> AsyncGenerator[StreamItem, None]:
        """Yield the expert's text as it comes, then one :class:`Completion`; raises ExpertError.

        An answer that repeats itself (the loop guard trips) ends there: the stream to the expert is closed, which
        stops llama-server's generation, and the completion says ``length``, as for an answer cut at max_tokens.
        """
        url = expert.url.rstrip("/") + "/v1/chat/completions"
        payload = completion_payload(
            request, model=expert.name, system_prompt=expert.system_prompt, defaults=expert.generation
        )
        try:
            prompt_tokens = check_prompt(
                [m.get("content") or "" for m in payload["messages"]], context_tokens=self.context_tokens
            )
        except PromptTooLargeError as exc:
            # the expert never sees it; rejected, so no other expert is tried either
            raise ExpertRejectedError(f"request refused before expert {expert.name}: {exc}") from None
        guard = self._loop_guard() if self._loop_guard is not None else None
        looped: Completion | None = None
        try:
            async with self._http.get().post(url, json=payload, headers=bearer(self._secret.get())) as response:
                if response.status != 200:
                    body = (await response.content.read(_ERROR_BODY_LIMIT)).decode("utf-8", "replace")
                    rejected = response.status in _REJECTED_STATUSES
                    error = ExpertRejectedError if rejected else ExpertUnavailableError
                    raise error(f"expert {expert.name} answered HTTP {response.status}: {body}")
                pieces = 0
                async with contextlib.aclosing(self._parse(expert, response.content)) as items:
                    async for item in items:
                        yield item
                        if isinstance(item, TextDelta) and guard is not None:
                            pieces += 1
                            if guard.feed(item.text):
                                # llama-server streams one token per piece; the prompt count is our estimate,
                                # since the server's own comes only at the end of a stream we cut short.
                                usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=pieces)
                                looped = Completion("length", usage)
                                break
            # leaving the block closed the connection unread: llama-server notices and stops generating
        except TimeoutError as exc:  # aiohttp's connect and read timeouts are TimeoutErrors
            raise ExpertUnavailableError(f"expert {expert.name} timed out ({type(exc).__name__})") from exc
        except aiohttp.ClientError as exc:
            # The message travels back to API callers: the expert's name and the kind of failure, no address.
            kind = type(exc).__name__
            raise ExpertUnavailableError(f"expert {expert.name} could not be reached ({kind})") from exc
        except ValueError as exc:  # aiohttp's line reader: a line longer than its buffer is no chunk of ours
            raise ExpertProtocolError(f"expert {expert.name} sent an unreadable stream: {exc}") from exc
        if looped is not None and guard is not None:
            log.warning(
                "expert %s repeated itself (%s); answer ended after %d pieces",
                expert.name,
                guard.reason,
                looped.usage.completion_tokens,
                extra={"event": "answer_loop", "expert": expert.name, "reason": guard.reason},
            )
            yield looped

    @staticmethod
    async def _parse(expert: Expert, lines: AsyncIterable[bytes]) -> AsyncGenerator[StreamItem, None]:
        finish_reason: str | None = None
        usage: Usage | None = None
        async for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.startswith("data:"):
                if line.startswith("error:"):
                    raise ExpertUnavailableError(
                        f"expert {expert.name} reported: {line[6:].strip()[:_ERROR_BODY_LIMIT]}"
                    )
                continue  # blank separators and SSE comments
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise ExpertProtocolError(f"expert {expert.name} sent a line that is not JSON: {data[:200]!r}") from exc
            if not isinstance(chunk, dict):
                raise ExpertProtocolError(f"expert {expert.name} sent a chunk that is not an object")
            if "error" in chunk:
                raise ExpertUnavailableError(
                    f"expert {expert.name} reported: {str(chunk['error'])[:_ERROR_BODY_LIMIT]}"
                )
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield TextDelta(text)
                if choice.get("finish_reason"):
                    finish_reason = str(choice["finish_reason"])
            usage = _usage_from(chunk) or usage
        if finish_reason is None:
            raise ExpertProtocolError(f"expert {expert.name} ended its stream without a finish reason")
        yield Completion(finish_reason=finish_reason, usage=usage or Usage())


@dataclass(frozen=True)
class ChatReply:
    """One whole answer: its text, why it stopped, and the expert's token counts."""

    text: str
    finish_reason: str
    usage: Usage = field(default_factory=Usage)


def chat_body(
    messages: list[dict[str, Any]],
    *,
    model: str = "",
    max_tokens: int = 256,
    temperature: float = 0.2,
    json_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The non-streamed ``/v1/chat/completions`` body; ``json_schema`` holds the answer to that schema."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": False,
    }
    if json_schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": json_schema}}
    return body


def _endpoint(url: str) -> str:
    base = url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base + "/v1/chat/completions"


def _reply(url: str, status: int, text: str, payload: Any) -> ChatReply:
    if status != 200:
        error = ExpertRejectedError if status in _REJECTED_STATUSES else ExpertUnavailableError
        raise error(f"the LLM at {url} answered HTTP {status}: {text[:_ERROR_BODY_LIMIT]}")
    try:
        choice = payload["choices"][0]
        content = choice["message"].get("content") or ""
        if not isinstance(content, str):
            raise TypeError("content is not text")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ExpertProtocolError(f"the LLM at {url} answered something that is not a chat completion: {exc}") from None
    return ChatReply(content, str(choice.get("finish_reason") or "stop"), _usage_from(payload) or Usage())


def _api_key(api_key: str | None, secret: SecretSource | None) -> dict[str, str]:
    return bearer(api_key if api_key is not None else (secret or SecretSource()).get())


async def complete(
    url: str,
    messages: list[dict[str, Any]],
    *,
    api_key: str | None = None,
    secret: SecretSource | None = None,
    timeout_s: float = 120.0,
    http: httpx.AsyncClient | None = None,
    **body: Any,
) -> ChatReply:
    """One whole chat completion from the llama-server at ``url`` (its base, with or without ``/v1``).

    ``body`` takes :func:`chat_body`'s options (model, max_tokens, temperature, json_schema). The key sent is
    ``api_key`` if given, else the stack's service secret. Raises :class:`ExpertError`.
    """
    endpoint = _endpoint(url)
    try:
        if http is None:
            async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
                response = await client.post(
                    endpoint, json=chat_body(messages, **body), headers=_api_key(api_key, secret)
                )
        else:
            response = await http.post(endpoint, json=chat_body(messages, **body), headers=_api_key(api_key, secret))
        payload = response.json() if response.status_code == 200 else None
    except httpx.TimeoutException as exc:
        raise ExpertUnavailableError(f"the LLM at {url} timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise ExpertUnavailableError(f"the LLM at {url} could not be reached ({type(exc).__name__})") from None
    except ValueError:
        raise ExpertProtocolError(f"the LLM at {url} answered something that is not JSON") from None
    return _reply(url, response.status_code, response.text, payload)


def complete_sync(
    url: str,
    messages: list[dict[str, Any]],
    *,
    api_key: str | None = None,
    secret: SecretSource | None = None,
    timeout_s: float = 120.0,
    transport: httpx.BaseTransport | None = None,
    **body: Any,
) -> ChatReply:
    """:func:`complete` for code that runs in a thread."""
    endpoint = _endpoint(url)
    try:
        with httpx.Client(timeout=timeout_s, transport=transport, trust_env=False) as client:
            response = client.post(endpoint, json=chat_body(messages, **body), headers=_api_key(api_key, secret))
        payload = response.json() if response.status_code == 200 else None
    except httpx.TimeoutException as exc:
        raise ExpertUnavailableError(f"the LLM at {url} timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise ExpertUnavailableError(f"the LLM at {url} could not be reached ({type(exc).__name__})") from None
    except ValueError:
        raise ExpertProtocolError(f"the LLM at {url} answered something that is not JSON") from None
    return _reply(url, response.status_code, response.text, payload)
