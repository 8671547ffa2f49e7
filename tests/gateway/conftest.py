"""Gateway fixtures: an API key, a registry double, the app in-process over ASGI, the real agent and gateway.

The registry double stands in for Consul, which cannot run here; everything else is real. The process
fixtures start ``python -m fleetmind.apps.agent_process`` on the tiny llama-server and ``python -m fleetmind.gateway``
in front of it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fleetmind.gateway.app import create_app
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.llm.tinymodel import write_tiny_llama
from fleetmind.security import KeyStore
from tests.conftest import start_llama_server, stop_process
from tests.gateway.gateway_helpers import (
    SERVICE_SECRET,
    FakeRegistry,
    Stack,
    expert_instance,
    free_tcp_port,
    spawn,
    stop,
    wait_ready,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def service_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """In-process gateways talk to the agent processes of the stack fixtures: one secret for both."""
    monkeypatch.setenv("FLEETMIND_SERVICE_SECRET", SERVICE_SECRET)
    return SERVICE_SECRET


@pytest.fixture
def free_port() -> Callable[[], int]:
    return free_tcp_port


@pytest.fixture
def key_store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "state" / "keys.json")


@pytest.fixture
def api_key(key_store: KeyStore) -> str:
    key, _ = key_store.create("gateway-tests")
    return key


@pytest.fixture
def registry() -> FakeRegistry:
    # a fake expert registered without the proof is never listed
    fake = expert_instance("fake", 9002, proven=False)
    return FakeRegistry(experts=[expert_instance("general"), expert_instance("coder", 9001), fake])


@pytest.fixture
def settings() -> GatewaySettings:
    # no agent anywhere: requests that pass validation end in a quick 503
    return GatewaySettings(discovery_timeout_s=0.3, request_timeout_s=10, registry_ttl_s=0)


@pytest.fixture
def app(settings: GatewaySettings, key_store: KeyStore, registry: FakeRegistry) -> FastAPI:
    return create_app(settings, key_store=key_store, registry=registry)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, lifespan included; a crash comes back as the 500 envelope, as a server sends it."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
            yield c


@contextlib.contextmanager
def running_stack(expert_url: str, tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """The real agent with one expert (``general``) and the real gateway in front of it, one key store."""
    state = tmp / "state"
    # operator: the tests read the agent's /api/status with it too
    key, _ = KeyStore(state / "keys.json").create("e2e", scope="operator")
    env = {
        **os.environ,
        "FLEETMIND_STATE_DIR": str(state),
        "FLEETMIND_AGENT_EXPERTS": f"general={expert_url}",
        "FLEETMIND_SERVICE_SECRET": SERVICE_SECRET,
        "HF_HUB_OFFLINE": "1",
        # nothing listens here: neither process may depend on a registry in this test
        "CONSUL_HTTP_ADDR": f"127.0.0.1:{free_tcp_port()}",
        **(extra_env or {}),
    }
    agent_port, gateway_port = free_tcp_port(), free_tcp_port()
    agent_url = f"http://127.0.0.1:{agent_port}"
    agent_log, gateway_log = tmp / "agent.log", tmp / "gateway.log"
    agent = spawn("fleetmind.apps.agent_process", agent_port, env, agent_log)
    gateway = None
    try:
        wait_ready(agent_url + "/health", agent, agent_log)
        gateway_env = {
            **env,
            "FLEETMIND_GATEWAY_AGENT_URL": agent_url,
            "FLEETMIND_GATEWAY_REQUEST_TIMEOUT_S": "60",
        }
        gateway = spawn("fleetmind.gateway", gateway_port, gateway_env, gateway_log)
        wait_ready(f"http://127.0.0.1:{gateway_port}/health", gateway, gateway_log)
        yield Stack(agent_url, f"http://127.0.0.1:{gateway_port}", key, gateway_log, agent_log)
    finally:
        if gateway is not None:
            stop(gateway)
        stop(agent)


@pytest.fixture(scope="module")
def stack(llama_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Agent and gateway on the tiny random model: the plumbing, fast."""
    with running_stack(llama_server_url, tmp_path_factory.mktemp("gateway-stack")) as s:
        yield s


@pytest.fixture(scope="module")
def wide_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Agent and gateway on the tiny model served with a KV cache roomy enough for one long and many short
    answers at once (the shared fixture's 2048 tokens overflow, which is llama-server's limit, not ours)."""
    tmp = tmp_path_factory.mktemp("gateway-wide-stack")
    port = free_tcp_port()
    # llama-server gives each of its 4 slots at most the model's trained context: the tiny model says 8192 here, so
    # the victim's 7500 tokens fit (with 2048 its answer ended, truncated, in under a second: before a loaded machine
    # noticed the kill)
    model = write_tiny_llama(tmp / "tiny-8k.gguf", context_length=8192)
    server = start_llama_server(model, port, tmp / "llama-server.log", "-c", "32768")
    try:
        # the tiny random model loops when greedy, which the loop guard would end in a fraction of a second: the
        # long answer these tests kill half-way must stream until it is killed
        with running_stack(f"http://127.0.0.1:{port}", tmp, {"FLEETMIND_AGENT_LOOP_GUARD": "false"}) as s:
            yield s
    finally:
        stop_process(server)


@pytest.fixture(scope="module")
def slow_stack(packaged_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Agent and gateway on the packaged SmolLM2: slow enough that a request can be abandoned half-way.

    Its own llama-server, not the session's: what a server has cached from earlier prompts changes its numbers a
    little, and answers that are checked for meaning should not depend on which tests ran before.
    """
    tmp = tmp_path_factory.mktemp("gateway-slow-stack")
    port = free_tcp_port()
    server = start_llama_server(packaged_model, port, tmp / "llama-server.log")
    try:
        with running_stack(f"http://127.0.0.1:{port}", tmp) as s:
            yield s
    finally:
        stop_process(server)
