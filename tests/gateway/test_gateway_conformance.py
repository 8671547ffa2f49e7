"""Conformance with the official ``openai`` client on a model that means something (the packaged SmolLM2-135M).

The gateway and the agent run as real processes in front of a real llama-server, as in production. The
conversation prompts were picked because the 135M model answers them reliably at temperature 0: told "the
secret word is Tom" in turn 1, it says "The secret word is Tom." in turn 3 (it does so for Tom, Olga and Max;
it muddles other names and other phrasings, which is the model, not the gateway). Each name is its own case,
so an answer that leaked from another conversation, or a turn that was dropped, shows as the wrong name.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.gateway.gateway_helpers import Stack

pytestmark = pytest.mark.slow

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
SAMPLING: dict[str, Any] = {"temperature": 0, "seed": 42}


def oai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway_url + "/v1", api_key=stack.api_key, max_retries=0, timeout=120)


@pytest.mark.parametrize("name", ["Tom", "Olga", "Max"])
def test_multi_turn_context_is_kept(slow_stack: Stack, name: str) -> None:
    messages: list[Any] = [SYSTEM, {"role": "user", "content": f"The secret word is {name}."}]
    with oai(slow_stack) as client:
        for follow_up in ("Say hello.", "What is the secret word?"):
            reply = client.chat.completions.create(model="fleetmind", messages=messages, max_tokens=30, **SAMPLING)
            content = reply.choices[0].message.content
            assert content
            messages += [{"role": "assistant", "content": content}, {"role": "user", "content": follow_up}]
        third = client.chat.completions.create(model="fleetmind", messages=messages, max_tokens=20, **SAMPLING)
    answer = third.choices[0].message.content or ""
    assert name.lower() in answer.lower(), answer
    others = {"Tom", "Olga", "Max"} - {name}
    assert not [o for o in others if o.lower() in answer.lower()], answer


def test_stream_concatenates_to_the_whole_answer_and_usage_adds_up(slow_stack: Stack) -> None:
    messages: list[Any] = [SYSTEM, {"role": "user", "content": "Write two sentences about the sea."}]
    with oai(slow_stack) as client:
        whole = client.chat.completions.create(model="fleetmind", messages=messages, max_tokens=48, **SAMPLING)
        chunks = list(
            client.chat.completions.create(
                model="fleetmind",
                messages=messages,
                max_tokens=48,
                stream=True,
                stream_options={"include_usage": True},
                **SAMPLING,
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    content = whole.choices[0].message.content
    assert content and len(content.split()) >= 5  # a real answer, not an empty one that trivially matches
    assert text == content
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 3  # streamed in pieces, not sent in one
    usage, streamed_usage = whole.usage, chunks[-1].usage
    assert usage is not None and streamed_usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert streamed_usage.model_dump() == usage.model_dump()
    assert usage.completion_tokens <= 48
    if whole.choices[0].finish_reason == "length":
        assert usage.completion_tokens == 48


def test_usage_prompt_tokens_grow_with_the_conversation(slow_stack: Stack) -> None:
    """Adding a turn adds its tokens: usage counts are the model's real ones, not estimates."""
    short: list[Any] = [SYSTEM, {"role": "user", "content": "Hello."}]
    longer = [*short, {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Hi."}]
    with oai(slow_stack) as client:
        a = client.chat.completions.create(model="fleetmind", messages=short, max_tokens=4, **SAMPLING).usage
        b = client.chat.completions.create(model="fleetmind", messages=longer, max_tokens=4, **SAMPLING).usage
    assert a is not None and b is not None
    assert b.prompt_tokens > a.prompt_tokens + 5


def test_json_mode_returns_parseable_json(slow_stack: Stack) -> None:
    messages: list[Any] = [
        SYSTEM,
        {"role": "user", "content": "Give a JSON object with keys name and age for a person called Bob."},
    ]
    with oai(slow_stack) as client:
        reply = client.chat.completions.create(
            model="fleetmind",
            messages=messages,
            max_tokens=80,
            response_format={"type": "json_object"},
            **SAMPLING,
        )
        streamed = client.chat.completions.create(
            model="fleetmind",
            messages=messages,
            max_tokens=80,
            response_format={"type": "json_object"},
            stream=True,
            **SAMPLING,
        )
        streamed_text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert reply.choices[0].finish_reason == "stop"
    data = json.loads(reply.choices[0].message.content or "")
    assert isinstance(data, dict) and data
    assert json.loads(streamed_text) == data
