"""From outside: with `fleetmind up` running (its supervisor job included), a SIGSTOP of an expert's
llama-server is healed by the supervisor, the audit names it, and the stack still stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.launcher import start_stack, stop_stack, wait_healthy


def _pids_of(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.slow
def test_sigstopped_expert_is_healed_by_the_supervisor(tiny_model: Path, tmp_path: Path) -> None:
    stack = start_stack(tmp_path, str(tiny_model))
    try:
        wait_healthy(stack.client, ("supervisor",), 60, stack.proc)
        pattern = f"llama-server.*--port {stack.ports['expert']}"
        (pid,) = _pids_of(pattern)
        time.sleep(3)  # the supervisor has seen the expert's check pass (a check never seen passing gets a grace)
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        entries: list[dict[str, object]] = []
        while time.monotonic() - stopped_at < 60 and not any(e.get("outcome") == "healed" for e in entries):
            out = stack.cli("supervise", "log", "--json", "--state-dir", str(stack.state_dir), "--job", "llama-expert")
            entries = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
            time.sleep(1)
        healed = [e for e in entries if e.get("outcome") == "healed"]
        assert healed, f"no healed entry within a minute: {entries or stack.output()[-2000:]}"
        entry = healed[0]
        assert entry["job"] == "llama-expert"
        assert entry["fault"]["kind"] == "unhealthy"  # type: ignore[index]
        assert (entry["action"], entry["decided_by"]) == ("restart", "rule")
        wait_healthy(stack.client, ("expert-general",), 60, stack.proc)
        assert _pids_of(pattern) != [pid]
        text = stack.cli("supervise", "log", "--state-dir", str(stack.state_dir)).stdout
        assert "llama-expert  unhealthy  → restart (rule/hung)  healed" in text
        # the same entries reached Mission Control's event stream (its self-healing panel), the supervisor posting
        # with the stack's service credential
        ui = f"http://127.0.0.1:{stack.ports['ui']}"
        events = httpx.get(f"{ui}/api/events", headers={"Authorization": f"Bearer {stack.key}"}, timeout=10).json()
        heals = [e for e in events["events"] if e["kind"] == "supervisor.heal"]
        assert any(e["data"].get("outcome") == "healed" and e["data"].get("job") == "llama-expert" for e in heals)
        assert {e["data"]["source"] for e in heals} == {"service"} and {e["data"]["by"] for e in heals} == {
            "supervisor"
        }
    finally:
        assert stop_stack(stack) == 0
    for leftover in _pids_of(f"fleetmind.supervisor.*{stack.state_dir}") + _pids_of(f"--port {stack.ports['expert']}"):
        with pytest.raises(ProcessLookupError):
            os.kill(leftover, 0)


@pytest.mark.slow
def test_a_bad_expert_update_is_rolled_back_by_the_supervisor(tiny_model: Path, tmp_path: Path) -> None:
    # the expert's job re-submitted with an argument llama-server rejects: it crash-loops right after the update,
    # and the supervisor rolls it back to the version that ran
    stack = start_stack(tmp_path, str(tiny_model))
    try:
        wait_healthy(stack.client, ("supervisor", "expert-general"), 60, stack.proc)
        job = stack.client.job("llama-expert")
        task = job["TaskGroups"][0]["Tasks"][0]
        task["Config"]["args"] = [*task["Config"]["args"], "--no-such-option"]
        stack.client.register_job(job)
        updated_at = time.monotonic()
        entries: list[dict[str, object]] = []
        while time.monotonic() - updated_at < 60 and not any(e.get("outcome") == "healed" for e in entries):
            out = stack.cli("supervise", "log", "--json", "--state-dir", str(stack.state_dir), "--job", "llama-expert")
            entries = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
            time.sleep(1)
        healed = [e for e in entries if e.get("outcome") == "healed"]
        assert healed, f"not healed within a minute: {entries or stack.output()[-2000:]}"
        assert healed[0]["action"] == "rollback", healed[0]
        wait_healthy(stack.client, ("expert-general",), 60, stack.proc)
        running = stack.client.job("llama-expert")["TaskGroups"][0]["Tasks"][0]["Config"]["args"]
        assert "--no-such-option" not in running
    finally:
        assert stop_stack(stack) == 0
