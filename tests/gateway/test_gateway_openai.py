"""The gateway as clients meet it: the official ``openai`` package against ``python -m fleetmind.gateway``
in front of the real agent process and a real llama-server (tiny random model)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from fleetmind.gateway.app import create_app
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.security import KeyStore
from tests.gateway.gateway_helpers import (
    FakeRegistry,
    Stack,
    assert_envelope,
    free_tcp_port,
    spawn,
    stop,
    wait_ready,
)

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue, the colour of the sky."},
    {"role": "user", "content": "And another one?"},
]
SAMPLING: dict[str, Any] = {"temperature": 0, "seed": 1234, "max_tokens": 24}


def oai(stack: Stack, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway_url + "/v1", api_key=key or stack.api_key, max_retries=0, timeout=60)


def test_non_streaming_answer_with_usage(stack: Stack) -> None:
    before = int(time.time())
    with oai(stack) as client:
        completion = client.chat.completions.create(model="fleetmind", messages=MESSAGES, **SAMPLING)
    after = time.time()
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "fleetmind"
    assert before <= completion.created <= after  # Unix seconds, not milliseconds
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens <= SAMPLING["max_tokens"]


def test_streaming_matches_non_streaming(stack: Stack) -> None:
    with oai(stack) as client:
        whole = client.chat.completions.create(model="fleetmind", messages=MESSAGES, **SAMPLING)
        chunks = list(
            client.chat.completions.create(
                model="fleetmind",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
                **SAMPLING,
            )
        )
    assert len(chunks) >= 3
    first, finish, usage_chunk = chunks[0], chunks[-2], chunks[-1]
    assert first.choices[0].delta.role == "assistant"
    assert {c.id for c in chunks} == {first.id} and first.id.startswith("chatcmpl-")
    assert {c.created for c in chunks} == {first.created}
    assert all(c.object == "chat.completion.chunk" and c.model == "fleetmind" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert finish.choices[0].finish_reason == whole.choices[0].finish_reason
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None and whole.usage is not None
    assert usage_chunk.usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_usage_and_the_raw_wire(stack: Stack) -> None:
    body = {"model": "fleetmind", "messages": MESSAGES[-1:], "stream": True, **SAMPLING}
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.stream("POST", stack.gateway_url + "/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in events[:-1]]
    assert all("usage" not in c for c in chunks)  # not asked for
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_the_whole_message_list_reaches_the_model(stack: Stack, llama_server_url: str) -> None:
    """Each message adds exactly its own tokens to the prompt the model sees: nothing is dropped or merged."""

    def through_gateway(messages: list[Any]) -> int:
        with oai(stack) as client:
            usage = client.chat.completions.create(model="fleetmind", messages=messages, **SAMPLING).usage
        assert usage is not None
        return usage.prompt_tokens

    def direct(messages: list[Any]) -> int:
        with openai.OpenAI(base_url=llama_server_url + "/v1", api_key="x", max_retries=0) as client:
            usage = client.chat.completions.create(model="any", messages=messages, **SAMPLING).usage
        assert usage is not None
        return usage.prompt_tokens

    full, last = MESSAGES, MESSAGES[-1:]
    assert through_gateway(full) - through_gateway(last) == direct(full) - direct(last) > 0
    # text parts are joined the same way as the plain string they spell
    parts = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "And another"}, {"type": "text", "text": "one?"}],
        }
    ]
    joined = [{"role": "user", "content": "And another\none?"}]
    assert through_gateway(parts) == through_gateway(joined)


def test_openai_client_sees_our_errors(stack: Stack) -> None:
    with oai(stack, key="fm-wrong") as client, pytest.raises(openai.AuthenticationError) as auth:
        client.chat.completions.create(model="fleetmind", messages=MESSAGES)
    assert auth.value.code == "invalid_api_key"
    with oai(stack) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert "fleetmind" in str(missing.value) and missing.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as unsupported:
            client.chat.completions.create(
                model="fleetmind",
                messages=MESSAGES,
                tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            )
        assert unsupported.value.param == "tools"
        assert [m.id for m in client.models.list()] == ["fleetmind"]
        assert client.models.retrieve("fleetmind").id == "fleetmind"


def test_malformed_json_then_a_good_request(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"}
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", content=b'{"messages": [', headers=headers)
    assert_envelope(response, 400, code="invalid_json")
    with oai(stack) as client:
        completion = client.chat.completions.create(model="fleetmind", messages=MESSAGES, **SAMPLING)
    assert completion.usage is not None and completion.usage.completion_tokens > 0


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_agent_timeout_is_a_clean_504(stack: Stack, stream: bool) -> None:
    # the gateway in-process, the agent real: the agent is told an impossible deadline and reports the timeout
    settings = GatewaySettings(agent_url=stack.agent_url, request_timeout_s=0.001, discovery_timeout_s=5)
    key_store = KeyStore(stack.gateway_log.parent / "state" / "keys.json")
    app: FastAPI = create_app(settings, key_store=key_store, registry=FakeRegistry(down=True))
    body = {"model": "fleetmind", "messages": MESSAGES, "stream": stream, "max_tokens": 2000}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as c:
            response = await c.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {stack.api_key}"}
            )
    error = assert_envelope(response, 504, code="timeout")
    assert error["type"] == "server_error"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_gateway_process_shuts_down_cleanly(sig: signal.Signals, tmp_path: Path) -> None:
    port = free_tcp_port()
    log = tmp_path / "gateway.log"
    env = {**os.environ, "FLEETMIND_STATE_DIR": str(tmp_path / "state")}
    proc = spawn("fleetmind.gateway", port, env, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", proc, log)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Shutting down" in log.read_text() or "shutdown" in log.read_text().lower()


class _Seen(logging.Handler):
    """Sets ``event`` when a log message containing ``text`` goes by."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@pytest.mark.anyio
async def test_a_request_waits_for_an_agent_that_is_still_starting(llama_server_url: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    key_store = KeyStore(state / "keys.json")
    key, _ = key_store.create("starting")
    port = free_tcp_port()
    settings = GatewaySettings(agent_url=f"http://127.0.0.1:{port}", discovery_timeout_s=60)
    app = create_app(settings, key_store=key_store, registry=FakeRegistry(down=True))
    body = {"model": "fleetmind", "messages": MESSAGES, **SAMPLING}
    env = {**os.environ, "FLEETMIND_STATE_DIR": str(state)}
    env["FLEETMIND_AGENT_EXPERTS"] = f"general={llama_server_url}"
    service_log = logging.getLogger("fleetmind.gateway.service")
    seen = _Seen("not reachable yet")
    service_log.addHandler(seen)
    previous_level = service_log.level
    service_log.setLevel(logging.INFO)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=90) as c:
                headers = {"Authorization": f"Bearer {key}"}
                pending = asyncio.ensure_future(c.post("/v1/chat/completions", json=body, headers=headers))
                # the request is in and has found nobody at the address; only then does the agent start
                waiting = asyncio.ensure_future(seen.event.wait())
                await asyncio.wait({pending, waiting}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                assert not pending.done(), "the request should still be waiting for the agent"
                agent = spawn("fleetmind.apps.agent_process", port, env, tmp_path / "agent.log")
                try:
                    response = await pending
                finally:
                    stop(agent)
    finally:
        service_log.removeHandler(seen)
        service_log.setLevel(previous_level)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] > 0
