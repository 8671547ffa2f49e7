"""Limits: oversized prompts and 100,000-message requests are refused fast, before any agent or expert sees
them; repeated bad keys from one address are throttled (429) on every app, and a good key still works."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetmind.contracts.protocol import AgentRequest, ChatMessage
from fleetmind.gateway.app import create_app
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.http.throttle import AuthThrottle
from fleetmind.llm.budget import MAX_MESSAGES, PromptTooLargeError, check_prompt
from fleetmind.llm.chat import Expert, ExpertClient, ExpertRejectedError
from fleetmind.security import KeyStore
from tests.conftest import serve_http


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:
        _Recorder.hits.append(self.path)
        self.send_response(500)
        self.end_headers()

    def do_GET(self) -> None:
        self.do_POST()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    """An 'agent' / 'expert' that records every request it gets (none should arrive)."""
    _Recorder.hits = []
    with serve_http(_Recorder) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def gateway(tmp_path: Path, upstream: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.create("limits")
    app = create_app(
        GatewaySettings(agent_url=upstream, requests_per_minute=0, tokens_per_minute=0),
        key_store=store,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client, key


def chat(n: int, text: str = "hi") -> dict[str, Any]:
    return {"model": "fleetmind", "messages": [{"role": "user", "content": text}] * n}


async def test_a_100k_message_request_is_refused_before_any_expert(gateway: tuple[httpx.AsyncClient, str]) -> None:
    # (no timing threshold: what it must show is that no expert was asked; speed is for bench/)
    client, key = gateway
    r = await client.post("/v1/chat/completions", json=chat(100_000), headers={"Authorization": f"Bearer {key}"})
    assert 400 <= r.status_code < 500, r.text
    assert _Recorder.hits == []


async def test_too_many_messages_and_oversized_prompts_are_refused(gateway: tuple[httpx.AsyncClient, str]) -> None:
    client, key = gateway
    auth = {"Authorization": f"Bearer {key}"}
    r = await client.post("/v1/chat/completions", json=chat(MAX_MESSAGES + 1), headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "messages"
    r = await client.post("/v1/chat/completions", json=chat(1, "word " * 20_000), headers=auth)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "context_length_exceeded" and "context" in error["message"]
    assert _Recorder.hits == []  # nothing reached the agent


async def test_the_agent_refuses_an_oversized_prompt_before_the_expert(upstream: str) -> None:
    client = ExpertClient(context_tokens=1000)
    request = AgentRequest(messages=[ChatMessage(role="user", content="x" * 10_000)])
    try:
        with pytest.raises(ExpertRejectedError, match="context"):
            async for _ in client.stream_chat(Expert("general", upstream), request):
                pass
    finally:
        await client.aclose()
    assert _Recorder.hits == []


def test_the_prompt_budget() -> None:
    assert check_prompt(["hello"] * 10) < 100
    with pytest.raises(PromptTooLargeError, match="too many"):
        check_prompt(["x"] * (MAX_MESSAGES + 1), context_tokens=10**9)
    with pytest.raises(PromptTooLargeError, match="context"):
        check_prompt(["x" * 5000], context_tokens=1000)


async def test_repeated_bad_keys_are_throttled(gateway: tuple[httpx.AsyncClient, str]) -> None:
    client, key = gateway
    statuses = []
    for i in range(60):
        r = await client.get("/v1/models", headers={"Authorization": f"Bearer wrong-{i}"})
        statuses.append(r.status_code)
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    r = await client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # the address waits, whatever it sends
    assert r.json()["error"]["code"] == "auth_throttled"


def test_the_throttle_refills_and_forgets() -> None:
    now = [0.0]
    throttle = AuthThrottle(burst=3, per_minute=60, max_clients=2, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") == 0
        throttle.failed("a")
    assert throttle.retry_after("a") == 1
    assert throttle.retry_after("b") == 0  # per address
    now[0] += 1.0
    assert throttle.retry_after("a") == 0  # one failure refilled per second
    throttle.failed("b")
    throttle.failed("c")  # a third address: the least recently seen is forgotten (bounded memory)
    assert len(throttle._buckets) <= 2
    assert AuthThrottle(burst=0).retry_after("a") == 0  # off


async def test_a_lone_surrogate_in_a_chat_is_a_400(gateway: tuple[httpx.AsyncClient, str]) -> None:
    client, key = gateway
    r = await client.post(
        "/v1/chat/completions",
        content=b'{"model": "fleetmind", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
        headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "messages[0].content" or "Unicode" in r.json()["error"]["message"]
    assert _Recorder.hits == []
