"""A chat request crosses each layer once: the OpenAI client's key is checked once (by the gateway), the model once
(by the agent, which routes by it), and a request whose registry caches are fresh asks the registry nothing.

The gateway and the agent process's app run in-process, the gateway reaching the agent over ASGI with the service
credential; the expert is a real llama-server on the tiny model. The registry (Consul, which cannot run here) is a
double that counts what it is asked; the key store and the router are the real ones, wrapped to count calls.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import pytest

from fleetmind.agent import routing
from fleetmind.agent.experts import ExpertDirectory
from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.apps.agent_process import create_app as create_agent_app
from fleetmind.apps.agent_process import detach_logging
from fleetmind.cluster.client import ClusterClient, ServiceInstance
from fleetmind.config import Settings
from fleetmind.contracts.names import AGENT_SERVICE, EXPERT_TAG
from fleetmind.gateway.app import create_app as create_gateway
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.security import KeyStore
from fleetmind.security.service import PROOF_META, SecretSource, proof

pytestmark = pytest.mark.asyncio

SECRET = "request-path-service-secret"
AGENT_PORT = 8000


class CountingRegistry:
    """Consul's answers for one agent and one expert, counting every question."""

    def __init__(self, expert_url: str) -> None:
        parts = urlsplit(expert_url)
        assert parts.hostname and parts.port
        self.calls: Counter[str] = Counter()
        self.consul_addr = "counting-registry:8500"
        self.agent = ServiceInstance(
            AGENT_SERVICE, "agent-1", "127.0.0.1", AGENT_PORT, ("agent",),
            {PROOF_META: proof(SECRET, AGENT_SERVICE, AGENT_PORT)},
        )  # fmt: skip
        self.expert = ServiceInstance(
            "expert-general", "expert-general-1", parts.hostname, parts.port, (EXPERT_TAG, "expert:general"),
            {PROOF_META: proof(SECRET, "expert-general", parts.port)},
        )  # fmt: skip

    async def ahealthy_services(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]:
        self.calls[f"healthy:{name}"] += 1
        return [self.agent] if name == AGENT_SERVICE else []

    async def aservices_by_tag(self, tag: str) -> list[ServiceInstance]:
        self.calls[f"tag:{tag}"] += 1
        return [self.expert] if tag == EXPERT_TAG else []


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Key checks (KeyStore.identify) and model checks (the workflow's plan_route), counted as they happen."""
    counts: Counter[str] = Counter()
    identify = KeyStore.identify

    def counted_identify(self: KeyStore, offered: str | None) -> Any:
        counts["key checks"] += 1
        return identify(self, offered)

    plan_route = routing.plan_route

    def counted_plan_route(*args: Any, **kwargs: Any) -> routing.RoutePlan:
        counts["model checks"] += 1
        return plan_route(*args, **kwargs)

    monkeypatch.setattr(KeyStore, "identify", counted_identify)
    monkeypatch.setattr("fleetmind.agent.workflows.steps.plan_route", counted_plan_route)
    return counts


def assert_answered(r: httpx.Response, stream: bool) -> None:
    """A whole OpenAI answer came back. The tiny random model may answer nothing at all (its first token may be
    end-of-text on another CPU's kernels), so the answer's shape is checked, not its text."""
    assert r.status_code == 200, r.text
    if stream:
        assert r.text.rstrip().endswith("data: [DONE]"), r.text
        return
    choice = r.json()["choices"][0]
    assert isinstance(choice["message"]["content"], str), choice
    assert choice["finish_reason"] in ("stop", "length"), choice


async def test_one_key_check_one_model_check_and_no_registry_call_when_warm(
    tmp_path: Path, llama_server_url: str, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    monkeypatch.setenv("FLEETMIND_SERVICE_SECRET", SECRET)
    key, _ = KeyStore(tmp_path / "keys.json").create("client")
    registry = CountingRegistry(llama_server_url)

    directory = ExpertDirectory(cluster=cast(ClusterClient, registry), ttl_s=300, secret=SecretSource(SECRET))
    runtime = AgentRuntime(settings=AgentSettings(), directory=directory)
    agent_app = create_agent_app(Settings(state_dir=tmp_path), runtime)
    agent_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=agent_app), timeout=60)
    gateway = create_gateway(
        GatewaySettings(discovery_timeout_s=5, request_timeout_s=60, registry_ttl_s=300),
        key_store=KeyStore(tmp_path / "keys.json"),
        registry=registry,
        http=agent_http,
        service_secret=SECRET,
    )
    body = {"model": "fleetmind", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
    headers = {"Authorization": f"Bearer {key}"}
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=gateway)
        async with (
            gateway.router.lifespan_context(gateway),
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080", timeout=60) as client,
        ):
            warm = await client.post("/v1/chat/completions", json=body, headers=headers)
            assert warm.status_code == 200, warm.text
            assert registry.calls == Counter({f"healthy:{AGENT_SERVICE}": 1, f"tag:{EXPERT_TAG}": 1})
            registry.calls.clear()
            counts.clear()
            for i, stream in enumerate((False, True, False, True)):
                ask = {**body, "stream": stream, "messages": [{"role": "user", "content": f"Say hi, {i}."}]}
                r = await client.post("/v1/chat/completions", json=ask, headers=headers)
                assert r.status_code == 200, r.text
                assert_answered(r, stream)
            assert counts == Counter({"key checks": 4, "model checks": 4})
            assert not registry.calls, registry.calls
            # the one model check is the agent's, and the gateway answers it in OpenAI's terms
            unknown = await client.post("/v1/chat/completions", json={**body, "model": "gpt-4o"}, headers=headers)
            assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
            assert "general" in unknown.json()["error"]["message"]
            assert not registry.calls
    finally:
        await agent_http.aclose()
        await agent_app.state.tool_runs.aclose()
        await runtime.stop()
        detach_logging(agent_app)


class NoHTTP(httpx.AsyncBaseTransport):
    """A transport that fails the test if anything is sent over it."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"the one-process gateway sent an HTTP request: {request.method} {request.url}")


async def test_one_process_the_gateway_hands_requests_to_its_agent_without_a_hop(
    tmp_path: Path, llama_server_url: str, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    """What `fleetmind up` runs on one machine (agent_process --gateway-port): the same checks, once each, and no
    HTTP between gateway and agent; a client that leaves mid-answer cancels the agent's request."""
    from fleetmind.apps.agent_process import create_gateway

    monkeypatch.setenv("FLEETMIND_SERVICE_SECRET", SECRET)
    key, _ = KeyStore(tmp_path / "keys.json").create("client")
    registry = CountingRegistry(llama_server_url)
    directory = ExpertDirectory(cluster=cast(ClusterClient, registry), ttl_s=300, secret=SecretSource(SECRET))
    runtime = AgentRuntime(settings=AgentSettings(), directory=directory)
    agent_app = create_agent_app(Settings(state_dir=tmp_path), runtime)
    gateway = create_gateway(agent_app, "127.0.0.1", 8080)
    service = gateway.state.chat_service
    await service.http.aclose()
    service.http = httpx.AsyncClient(transport=NoHTTP())
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "general", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
    transport = httpx.ASGITransport(app=gateway)
    client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080", timeout=60)
    try:
        not_yet = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert not_yet.status_code == 503, not_yet.text  # the pipeline is not running: the agent is not ready
        await runtime.start()
        counts.clear()
        for i, stream in enumerate((False, True)):
            ask = {**body, "stream": stream, "messages": [{"role": "user", "content": f"Say hi, {i}."}]}
            r = await client.post("/v1/chat/completions", json=ask, headers=headers)
            assert r.status_code == 200, r.text
            assert_answered(r, stream)
        assert counts == Counter({"key checks": 2, "model checks": 2})
        unknown = await client.post("/v1/chat/completions", json={**body, "model": "gpt-4o"}, headers=headers)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
        refused = await client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401
        # a client that goes away after the first chunk: the agent's request ends too, nothing stays in flight
        long = {**body, "stream": True, "max_tokens": 200, "messages": [{"role": "user", "content": "Count to 100."}]}
        async with client.stream("POST", "/v1/chat/completions", json=long, headers=headers) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    break
        for _ in range(100):
            if not runtime.in_flight:
                break
            await asyncio.sleep(0.05)
        assert not runtime.in_flight
    finally:
        await client.aclose()
        await service.aclose()
        await agent_app.state.tool_runs.aclose()
        await runtime.stop()
        detach_logging(agent_app)
