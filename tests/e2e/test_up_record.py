"""`fleetmind up` on other ports, then `fleetmind status` and `fleetmind down` with no port options and no
NOMAD_ADDR: they find the stack through the record `up` keeps in the state dir (issue 15)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.launcher import start_stack, stop_stack


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
def test_status_and_down_find_a_stack_started_on_other_ports(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    nomad = 5646 if _free(5646) else free_port()  # the example, unless this machine already uses it
    stack = start_stack(tmp_path_factory.mktemp("record"), str(tiny_model), ports={"nomad": nomad}, cluster_env=False)
    try:
        assert "NOMAD_ADDR" not in stack.env and "CONSUL_HTTP_ADDR" not in stack.env
        record = json.loads((stack.state_dir / "stack.json").read_text())
        assert record["pid"] == stack.proc.pid
        assert record["nomad_addr"] == f"http://127.0.0.1:{nomad}"
        assert record["consul_addr"] == f"127.0.0.1:{stack.ports['consul']}"
        assert record["ports"]["gateway_port"] == stack.ports["gateway"]

        status = stack.cli("status")
        assert f"fleetmind at http://127.0.0.1:{nomad}" in status.stdout, status.stdout
        for job in ("llama-embedder", "llama-expert", "llama-expert-coding", "pipecatapp", "supervisor"):
            assert job in status.stdout
        assert "moe_gateway" not in status.stdout  # one machine: the agent's process serves the gateway
        assert "running" in status.stdout and "passing" in status.stdout

        down = stack.cli("down")
        assert f"stopped (pid {stack.proc.pid}" in down.stdout, down.stdout + down.stderr
        assert stack.proc.wait(timeout=30) == 0
        assert "fleetmind stopped" in stack.output()
        assert not (stack.state_dir / "stack.json").exists()

        after = stack.cli("down")
        assert "not running (no record" in after.stdout
    finally:
        stop_stack(stack)
