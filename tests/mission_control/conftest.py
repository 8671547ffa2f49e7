"""Fixtures for Mission Control's tests: a state dir with an API key, the app in-process, a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

# The hung-expert helper lives with the agent tests; test folders are not packages, so it is found by path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))

from agent_testkit import HungServer, run_hung_server

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.apps.agent_process import create_app, detach_logging
from fleetmind.config import Settings
from fleetmind.security import KeyStore, Scope
from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.base import ToolCall, tool
from fleetmind.tools.registry import ToolRegistry
from fleetmind.tools.runner import ToolRunner, build_runner


@tool(
    "echo_after_approval",
    "Echo a text back; needs a person's approval (a stand-in risk level for tests, not a stand-in part).",
    {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    risk="approval",
)
def echo_after_approval(call: ToolCall) -> dict[str, str]:
    return {"echo": call.args["text"]}


@tool(
    "add",
    "Add two integers.",
    {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
)
def add(call: ToolCall) -> int:
    return int(call.args["a"]) + int(call.args["b"])


def make_runner(state_dir: Path, *, approval_timeout_s: float = 30.0) -> ToolRunner:
    """A real runner (policy, approvals, audit) over two small tools registered the way plugins are."""
    return build_runner(
        state_dir=state_dir / "tools",
        approvals=ApprovalBroker(timeout_s=approval_timeout_s),
        registry=ToolRegistry([echo_after_approval, add]),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StateDir:
    path: Path
    key: str


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    key, _ = KeyStore(tmp_path / "keys.json").create("tests", scope="operator")
    return StateDir(tmp_path, key)


@dataclass
class InProcess:
    client: httpx.AsyncClient
    runtime: AgentRuntime
    key: str
    app: FastAPI
    state_dir: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def chat(self, body: object = None, *, content: bytes | None = None) -> httpx.Response:
        """POST /api/agent/chat with the key: ``body`` as JSON, or raw ``content``."""
        if content is not None:
            return await self.client.post("/api/agent/chat", headers=self.auth, content=content)
        return await self.client.post("/api/agent/chat", headers=self.auth, json=body)


@pytest_asyncio.fixture
async def in_process(state: StateDir, llama_server_url: str) -> AsyncIterator[InProcess]:
    """The app over ASGI with a running runtime (started here: ASGI transports do not run lifespans)."""
    runtime = AgentRuntime(settings=AgentSettings(experts=f"general={llama_server_url}"))
    app = create_app(Settings(state_dir=state.path), runtime, tools=make_runner(state.path))
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent.test") as client:
            yield InProcess(client, runtime, state.key, app, state.path)
    finally:
        await app.state.tool_runs.aclose()
        await runtime.stop()
        detach_logging(app)


@dataclass
class AgentProcess:
    url: str
    key: str
    proc: subprocess.Popen[bytes]
    log: Path
    hung: HungServer

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"agent exited with {proc.returncode}: {tail}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"agent did not become healthy: {log.read_text(errors='replace')[-3000:]}")


@contextmanager
def run_agent(
    state_dir: Path, experts: str, *, scope: Scope = "operator", env: dict[str, str] | None = None
) -> Iterator[tuple[str, str, subprocess.Popen[bytes], Path]]:
    """The agent process (``python -m fleetmind.apps.agent_process``) over ``state_dir`` with ``experts`` and a new
    key of ``scope``, plus ``env``:
    its URL, the key, the process and its log (killed, with its process group, on the way out)."""
    key, _ = KeyStore(state_dir / "keys.json").create("tests", scope=scope)
    port = _free_port()
    log = state_dir / "agent.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETMIND_", "PIECAT_"))}
    base |= {
        "FLEETMIND_STATE_DIR": str(state_dir),
        "FLEETMIND_AGENT_EXPERTS": experts,
        "CONSUL_HTTP_ADDR": "127.0.0.1:1",  # never asked: the expert list is fixed
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "fleetmind.apps.agent_process", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, env=base | (env or {}), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc, log)
        yield f"http://127.0.0.1:{port}", key, proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def agent_process(tmp_path_factory: pytest.TempPathFactory, llama_server_url: str) -> Iterator[AgentProcess]:
    """``python -m fleetmind.apps.agent_process`` as a real process, with a general expert and a hung one."""
    state_dir = tmp_path_factory.mktemp("agent-state")
    with run_hung_server() as hung, run_agent(state_dir, f"general={llama_server_url},hung={hung.url}") as agent:
        url, key, proc, log = agent
        yield AgentProcess(url, key, proc, log, hung)


@dataclass
class Served:
    """The app on a real socket (uvicorn in a thread of this process), for WebSocket tests."""

    url: str
    app: FastAPI
    key: str
    state_dir: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/ws/events"


@pytest.fixture
def served(state: StateDir, llama_server_url: str, request: pytest.FixtureRequest) -> Iterator[Served]:
    """Mission Control served by uvicorn on a free port; indirect parametrization sets the hub's reader bound."""
    import threading

    import uvicorn

    from fleetmind.events import EventHub

    hub = EventHub(queue_size=getattr(request, "param", 20_000))
    runtime = AgentRuntime(settings=AgentSettings(experts=f"general={llama_server_url}"))
    app = create_app(Settings(state_dir=state.path), runtime, hub=hub, tools=make_runner(state.path))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, name="mission-control-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", app, state.key, state.path)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
