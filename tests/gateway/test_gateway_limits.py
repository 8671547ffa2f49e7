"""Per-key budgets: requests and tokens per minute, 429 with ``Retry-After``, keyed by the key's hash.

The bucket arithmetic runs on a hand-driven clock; the HTTP behaviour runs through the app in-process, and
the token budget against the real agent and llama-server, because only a real answer has real token counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from fleetmind.gateway.app import create_app
from fleetmind.gateway.errors import RateLimitedError
from fleetmind.gateway.limits import RateLimiter
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.security import KeyStore, hash_key
from tests.gateway.gateway_helpers import FakeRegistry, Stack, assert_envelope

CHAT = "/v1/chat/completions"
GOOD: dict[str, Any] = {
    "model": "fleetmind",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 8,
    "temperature": 0,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_request_budget_bursts_then_refills_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(requests_per_minute=3, clock=clock)
    for _ in range(3):
        limiter.admit("a")
    with pytest.raises(RateLimitedError) as refused:
        limiter.admit("a")
    assert refused.value.status_code == 429 and refused.value.type == "requests"
    assert refused.value.retry_after_s == 20  # one request per 20 s at 3/min
    limiter.admit("b")  # another key has its own budget
    clock.now += 19.5
    with pytest.raises(RateLimitedError) as again:
        limiter.admit("a")
    assert again.value.retry_after_s == 1  # rounded up, never 0
    clock.now += 0.5
    limiter.admit("a")


def test_token_debt_blocks_until_repaid() -> None:
    clock = Clock()
    limiter = RateLimiter(tokens_per_minute=600, clock=clock)  # 10 tokens/s
    limiter.admit("k")
    limiter.charge("k", 1000)  # one big answer: 400 tokens into debt
    with pytest.raises(RateLimitedError) as refused:
        limiter.admit("k")
    assert refused.value.type == "tokens"
    assert refused.value.retry_after_s == 41  # (400 debt + 1) / 10 per s, rounded up
    clock.now += 41
    limiter.admit("k")


def test_zero_turns_a_limit_off_and_negative_is_refused() -> None:
    limiter = RateLimiter(requests_per_minute=0, tokens_per_minute=0)
    assert not limiter.enabled
    for _ in range(1000):
        limiter.admit("k")
    limiter.charge("k", 10**9)
    limiter.admit("k")
    with pytest.raises(ValueError, match="negative"):
        RateLimiter(requests_per_minute=-1)


@pytest.fixture
def limited_app(key_store: KeyStore, registry: FakeRegistry) -> FastAPI:
    settings = GatewaySettings(discovery_timeout_s=0.1, registry_ttl_s=0, requests_per_minute=2)
    return create_app(settings, key_store=key_store, registry=registry)


@pytest.fixture
async def limited(limited_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=limited_app)
    async with limited_app.router.lifespan_context(limited_app):
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
            yield c


@pytest.mark.anyio
async def test_third_request_in_a_minute_is_429_with_retry_after(
    limited: httpx.AsyncClient, limited_app: FastAPI, key_store: KeyStore, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    assert (await limited.get("/v1/models", headers=headers)).status_code == 200
    # a chat request counts as soon as it is let in, whatever becomes of it (here: no agent, 503)
    assert_envelope(await limited.post(CHAT, json=GOOD, headers=headers), 503)
    refused = await limited.post(CHAT, json=GOOD, headers=headers)
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "requests"
    assert set(body) == {"message", "type", "param", "code"}
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert api_key not in refused.text
    # the budget belongs to the key: another key is not affected, and a wrong key is a 401, not a 429
    other, _ = key_store.create("other")
    assert (await limited.get("/v1/models", headers={"Authorization": f"Bearer {other}"})).status_code == 200
    assert_envelope(await limited.get("/v1/models", headers={"Authorization": "Bearer fm-wrong"}), 401)
    # buckets are keyed by the hash; the key itself is stored nowhere in the limiter
    buckets = limited_app.state.limiter._requests._buckets
    assert set(buckets) == {hash_key(api_key), hash_key(other)}


@pytest.mark.anyio
async def test_token_budget_with_real_usage(stack: Stack) -> None:
    """A key whose answer used more tokens than its minute allows is refused next time, naming tokens."""
    settings = GatewaySettings(agent_url=stack.agent_url, tokens_per_minute=10)
    key_store = KeyStore(stack.gateway_log.parent / "state" / "keys.json")
    app = create_app(settings, key_store=key_store, registry=FakeRegistry(down=True))
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as c:
            first = await c.post(CHAT, json=GOOD, headers=headers)
            assert first.status_code == 200, first.text
            assert first.json()["usage"]["total_tokens"] > 10
            refused = await c.post(CHAT, json={**GOOD, "stream": True}, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert int(refused.headers["retry-after"]) >= 1


def test_openai_client_sees_a_rate_limit_error(stack: Stack, tmp_path: Any) -> None:
    """The official client maps our 429 to its RateLimitError (and would honour Retry-After when retrying)."""
    from fastapi.testclient import TestClient

    settings = GatewaySettings(agent_url=stack.agent_url, requests_per_minute=1)
    key_store = KeyStore(stack.gateway_log.parent / "state" / "keys.json")
    app = create_app(settings, key_store=key_store, registry=FakeRegistry(down=True))
    with TestClient(app) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key=stack.api_key, max_retries=0, http_client=http)
        assert client.chat.completions.create(**GOOD).usage is not None
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(**GOOD)
    assert refused.value.code == "rate_limit_exceeded"
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
