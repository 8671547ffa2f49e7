"""Helpers for the gateway tests: a registry double (Consul cannot run here), the error-envelope check, and
starting and stopping the real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fleetmind.cluster.client import RegistryUnavailable, ServiceInstance
from fleetmind.security.service import PROOF_META, proof


@dataclass
class FakeRegistry:
    """Answers as Consul's health/catalog API would; ``agents`` holds one answer per call."""

    agents: list[list[ServiceInstance]] = field(default_factory=list)
    experts: list[ServiceInstance] = field(default_factory=list)
    down: bool = False
    consul_addr: str = "fake-registry:8500"
    calls: int = 0

    async def ahealthy_services(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]:
        self.calls += 1
        if self.down:
            raise RegistryUnavailable(f"registry at {self.consul_addr} did not answer")
        if not self.agents:
            return []
        # the last answer repeats: a list of answers models an agent that turns healthy after a while
        return self.agents.pop(0) if len(self.agents) > 1 else self.agents[0]

    async def aservices_by_tag(self, tag: str) -> list[ServiceInstance]:
        if self.down:
            raise RegistryUnavailable(f"registry at {self.consul_addr} did not answer")
        return [e for e in self.experts if tag in e.tags]


# The stack's service secret of these tests, passed as the jobs pass it (FLEETMIND_SERVICE_SECRET): the gateway
# needs it to reach any agent, and lists only experts whose registration proves it.
SERVICE_SECRET = "gateway-tests-service-secret"


def expert_instance(name: str, port: int = 9000, *, proven: bool = True) -> ServiceInstance:
    return ServiceInstance(
        name=f"expert-{name}",
        id=f"expert-{name}-1",
        address="127.0.0.1",
        port=port,
        tags=("expert", f"expert:{name}"),
        meta={PROOF_META: proof(SERVICE_SECRET, f"expert-{name}", port)} if proven else {},
    )


def assert_envelope(response: httpx.Response, status: int, *, code: str | None = None) -> dict[str, Any]:
    """The response is ``status`` with OpenAI's error envelope (and ``code``); returns the inner error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] in ("invalid_request_error", "server_error")
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- real processes ---------------------------------------------------------------------------------------


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Poll until ``url`` answers 200; fail early, with the log, if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args!r} exited with {proc.returncode}: {log.read_text(errors='replace')[-3000:]}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {log.read_text(errors='replace')[-3000:]}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM the process group, then SIGKILL what is left; returns the exit code."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=timeout)
    return proc.returncode


def spawn(module: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class Stack:
    agent_url: str
    gateway_url: str
    api_key: str
    gateway_log: Path
    agent_log: Path
