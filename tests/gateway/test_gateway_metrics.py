"""``/metrics``: requests, latencies, tokens and errors per key id and per model, in Prometheus' text format.

The app runs in-process in front of the real agent and llama-server, so the token counts it exports are the
expert's own and can be checked against what the client was told.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from fleetmind.gateway.app import create_app
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.security import KeyStore, hash_key
from tests.gateway.gateway_helpers import FakeRegistry, Stack

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
BODY: dict[str, Any] = {
    "model": "fleetmind",
    "messages": [{"role": "user", "content": "Count to three."}],
    "max_tokens": 6,
    "temperature": 0,
}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample as ``(name, labels) -> value``."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(all_: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in all_.items() if n == name and want <= ls)


@asynccontextmanager
async def gateway(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI, KeyStore]]:
    """The app in-process in front of the real agent; entered inside the test, so that its pooled connections
    to the agent are made and closed on the test's own event loop."""
    settings = GatewaySettings(agent_url=stack.agent_url)
    key_store = KeyStore(stack.gateway_log.parent / "state" / "keys.json")
    app = create_app(settings, key_store=key_store, registry=FakeRegistry(down=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as c:
            yield c, app, key_store


async def test_metrics_per_key_and_model(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    async with gateway(stack) as (client, _, key_store):
        await _exercise_and_check(client, key_store, stack, monkeypatch)


async def _exercise_and_check(
    client: httpx.AsyncClient, key_store: KeyStore, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = next(r for r in key_store.records() if r.sha256 == hash_key(stack.api_key))
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    whole = (await client.post(CHAT, json=BODY, headers=headers)).json()
    streamed = await client.post(
        CHAT, json={**BODY, "stream": True, "stream_options": {"include_usage": True}}, headers=headers
    )
    final = json.loads(streamed.text.split("\n\n")[-3].removeprefix("data: "))
    assert (await client.post(CHAT, json={**BODY, "model": "made-up"}, headers=headers)).status_code == 404
    assert (await client.post(CHAT, json=BODY, headers={"Authorization": "Bearer fm-nope"})).status_code == 401
    # a key that only exists as a hash in the environment is labelled by a hash prefix
    env_key = "fm-from-the-environment"
    monkeypatch.setenv("FLEETMIND_API_KEYS", hash_key(env_key))
    assert (await client.get("/v1/models", headers={"Authorization": f"Bearer {env_key}"})).status_code == 200

    response = await client.get("/metrics")  # no key needed by default
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert stack.api_key not in text and env_key not in text
    all_ = samples(text)
    key = record.id
    ok = {"key": key, "model": "fleetmind", "endpoint": "chat.completions", "status": "200"}
    assert value(all_, "fleetmind_gateway_requests_total", **ok) == 2
    assert value(all_, "fleetmind_gateway_request_seconds_count", key=key, model="fleetmind", stream="true") == 1
    assert value(all_, "fleetmind_gateway_request_seconds_count", key=key, model="fleetmind", stream="false") == 1
    assert value(all_, "fleetmind_gateway_time_to_first_token_seconds_count", key=key, model="fleetmind") == 2
    for kind, field in (("prompt", "prompt_tokens"), ("completion", "completion_tokens")):
        expected = whole["usage"][field] + final["usage"][field]
        assert expected > 0
        assert value(all_, "fleetmind_gateway_tokens_total", key=key, model="fleetmind", kind=kind) == expected
    # errors: the unknown model is not a label (a client cannot mint series), the bad key is "-"
    assert value(all_, "fleetmind_gateway_errors_total", key=key, model="-", code="model_not_found") == 1
    assert value(all_, "fleetmind_gateway_errors_total", key="-", code="invalid_api_key") == 1
    assert not [ls for (n, ls) in all_ if ("model", "made-up") in ls]
    env_label = "sha256:" + hash_key(env_key)[:12]
    assert value(all_, "fleetmind_gateway_requests_total", key=env_label, endpoint="models", status="200") == 1


async def test_metrics_can_require_a_key(key_store: KeyStore, api_key: str) -> None:
    settings = GatewaySettings(metrics_require_key=True)
    app = create_app(settings, key_store=key_store, registry=FakeRegistry())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get("/metrics", headers={"Authorization": "Bearer fm-wrong"})).status_code == 401
        response = await c.get("/metrics", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200 and "fleetmind_gateway_requests" in response.text
