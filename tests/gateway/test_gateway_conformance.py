"""Conformance with the official ``openai`` client, and what reached the model through the gateway and the agent.

The gateway and the agent run as real processes in front of a real llama-server, as in production. What a 135M
model says is not checked for meaning: it depends on the build's floating point (an AVX2 build answers a recall
question differently from an AVX-512 one). The multi-turn test looks at what reached the expert instead, through a
recording proxy: every turn in order, and a prompt whose token count is that of the whole conversation. The other
tests check properties that hold for any build on the packaged SmolLM2 (a stream adds up to the whole answer,
usage adds up, JSON mode gives JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx
import openai
import pytest

from tests.conftest import serve_http
from tests.gateway.conftest import running_stack
from tests.gateway.gateway_helpers import Stack

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
SAMPLING: dict[str, Any] = {"temperature": 0, "seed": 42}


def oai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway_url + "/v1", api_key=stack.api_key, max_retries=0, timeout=120)


class RecordingProxy(BaseHTTPRequestHandler):
    """Forwards every request to ``upstream`` (a llama-server) and keeps each JSON body it carried."""

    upstream = ""
    seen: ClassVar[list[tuple[str, Any]]] = []

    def _forward(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if body:
            self.seen.append((self.path, json.loads(body)))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
        upstream = httpx.request(method, self.upstream + self.path, content=body, headers=headers, timeout=120)
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/octet-stream"))
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def recorded(
    llama_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, type[RecordingProxy]]]:
    """Agent and gateway whose one expert is the tiny model behind a :class:`RecordingProxy`."""
    proxy = type("Proxy", (RecordingProxy,), {"upstream": llama_server_url, "seen": []})
    with serve_http(proxy) as port:
        with running_stack(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("recorded-stack")) as stack:
            yield stack, proxy


def test_multi_turn_context_is_kept(recorded: tuple[Stack, type[RecordingProxy]], llama_server_url: str) -> None:
    stack, proxy = recorded
    messages: list[Any] = [
        SYSTEM,
        {"role": "user", "content": "The secret word is Tom."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Say hello."},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is the secret word?"},
    ]
    proxy.seen.clear()
    with oai(stack) as client:
        reply = client.chat.completions.create(model="fleetmind", messages=messages, max_tokens=4, **SAMPLING)
    # what reached the expert: every turn, in order, word for word
    (asked,) = [body for path, body in proxy.seen if path == "/v1/chat/completions"]
    assert [{"role": m["role"], "content": m["content"]} for m in asked["messages"]] == messages
    # and the model read all of it: the prompt it counted is the whole conversation in its chat template
    prompt = httpx.post(f"{llama_server_url}/apply-template", json={"messages": messages}).json()["prompt"]
    tokens = httpx.post(f"{llama_server_url}/tokenize", json={"content": prompt, "add_special": True}).json()
    assert reply.usage is not None and reply.usage.prompt_tokens == len(tokens["tokens"])


@pytest.mark.slow
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


@pytest.mark.slow
def test_usage_prompt_tokens_grow_with_the_conversation(slow_stack: Stack) -> None:
    """Adding a turn adds its tokens: usage counts are the model's real ones, not estimates."""
    short: list[Any] = [SYSTEM, {"role": "user", "content": "Hello."}]
    longer = [*short, {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Hi."}]
    with oai(slow_stack) as client:
        a = client.chat.completions.create(model="fleetmind", messages=short, max_tokens=4, **SAMPLING).usage
        b = client.chat.completions.create(model="fleetmind", messages=longer, max_tokens=4, **SAMPLING).usage
    assert a is not None and b is not None
    assert b.prompt_tokens > a.prompt_tokens + 5


@pytest.mark.slow
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
