"""Start and stop a whole embedded stack the way a user does: the `fleetmind up` command, as a process.

Used by the end-to-end tests and by the benchmarks in bench/, so both measure the stack a user gets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fleetmind.cluster.client import ClusterClient
from fleetmind.cluster.token import ensure_token, read_token, token_file
from fleetmind.stack import SERVICES
from tests.conftest import free_port


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    state_dir: Path
    log: Path
    ports: dict[str, int]
    key: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}/v1"

    @property
    def client(self) -> ClusterClient:
        return ClusterClient(
            consul_addr=f"127.0.0.1:{self.ports['consul']}",
            nomad_addr=f"http://127.0.0.1:{self.ports['nomad']}",
            token=read_token(token_file(self.state_dir)),
        )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleetmind", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_healthy(
    client: ClusterClient, services: tuple[str, ...], timeout: float, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"fleetmind up exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"services not healthy within {timeout}s: {pending}")
        try:
            pending = [s for s in pending if not client.healthy_services(s)]
        except Exception:
            pass
        time.sleep(0.2)


def start_stack(
    tmp: Path,
    model: str,
    timeout: float = 120,
    *,
    ports: dict[str, int] | None = None,
    cluster_env: bool = True,
    threads: int | None = 1,
) -> Stack:
    """`fleetmind up` on free ports (or the ``ports`` given). With ``cluster_env``, the CLI calls of the stack get
    NOMAD_ADDR/CONSUL_HTTP_ADDR; without, they find the stack the way a user's do: through the record `up` keeps.
    ``threads`` None: llama-server's threads as `up` picks them by default (the benchmarks measure that stack)."""
    names = ("gateway", "ui", "expert", "coding", "embeddings", "nomad", "consul")
    ports = {name: free_port() for name in names} | (ports or {})
    state = tmp / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("NOMAD_ADDR", "CONSUL_HTTP_ADDR")}
    env |= {"FLEETMIND_STATE_DIR": str(state), "HF_HUB_OFFLINE": "1"}
    if cluster_env:
        env |= {"NOMAD_ADDR": f"http://127.0.0.1:{ports['nomad']}", "CONSUL_HTTP_ADDR": f"127.0.0.1:{ports['consul']}"}
    # A key made with the CLI, as a user would; `up` then prints no first-run key.
    key = subprocess.run(
        [sys.executable, "-m", "fleetmind", "keys", "create", "--name", "e2e", "--scope", "operator"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ensure_token(token_file(state))  # made here so the test's client has it before `up` is ready; `up` keeps it
    log = tmp / "up.log"
    cmd = [sys.executable, "-m", "fleetmind", "up", "--model", model]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    for name in names:
        cmd += [f"--{name}-port", str(ports[name])]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    stack = Stack(proc=proc, env=env, state_dir=state, log=log, ports=ports, key=key)
    try:
        wait_healthy(stack.client, SERVICES, timeout, proc)
    except Exception:
        stop_stack(stack)
        raise RuntimeError(f"stack did not come up:\n{stack.output()[-4000:]}") from None
    return stack


def stop_stack(stack: Stack, timeout: float = 30) -> int:
    if stack.proc.poll() is None:
        stack.proc.send_signal(signal.SIGINT)
        try:
            stack.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(stack.proc.pid, signal.SIGKILL)
            stack.proc.wait()
    return stack.proc.returncode
