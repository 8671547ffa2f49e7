"""A supervisor in its own process (as `fleetmind up` runs it) asks Mission Control before a risky action: it files
the request with the service credential, a person decides on the page's routes, and the supervisor honours it.
The agent process (with Mission Control) is real; the supervisor's gate is its real HTTP client."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from fleetmind.security.service import load_secret
from fleetmind.supervisor.approvals import HttpApprovals, Verdict
from tests.mission_control.conftest import run_agent


def _ask_in_background(gate: HttpApprovals, action: str) -> tuple[threading.Thread, list[Verdict]]:
    verdicts: list[Verdict] = []
    thread = threading.Thread(
        target=lambda: verdicts.append(
            gate.ask(job="llama-expert", action=action, risk="high", reason="crash loop after an update", detail="v3")
        )
    )
    thread.start()
    return thread, verdicts


def _pending(url: str, key: str, action: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pending = httpx.get(f"{url}/api/approvals", headers={"Authorization": f"Bearer {key}"}).json()["pending"]
        found = [p for p in pending if p["tool"] == f"supervisor.{action}"]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no pending supervisor.{action} on the page")


@pytest.mark.parametrize("approve", [True, False])
def test_a_person_decides_the_supervisors_risky_action(tmp_path: Path, llama_server_url: str, approve: bool) -> None:
    with run_agent(tmp_path, f"general={llama_server_url}", scope="operator") as (url, key, _proc, _log):
        secret = load_secret(tmp_path)
        assert secret
        gate = HttpApprovals(f"{url}/api/approvals", secret, timeout_s=60, poll_s=0.2)
        thread, verdicts = _ask_in_background(gate, "rollback")
        pending = _pending(url, key, "rollback")
        assert pending["requester"] == "supervisor" and pending["risk"] == "high"
        assert pending["arguments"] == {"job": "llama-expert", "action": "rollback", "detail": "v3"}
        decided = httpx.post(
            f"{url}/api/approvals/{pending['id']}/{'approve' if approve else 'deny'}",
            headers={"Authorization": f"Bearer {key}"},
            json={"note": "seen on the page"},
        )
        assert decided.status_code == 200, decided.text
        thread.join(30)
        assert [(v.outcome, v.approval_id) for v in verdicts] == [("approved" if approve else "denied", pending["id"])]
        assert verdicts[0].approved is approve and verdicts[0].by and "tests" in verdicts[0].by


def test_only_the_stacks_services_file_requests(tmp_path: Path, llama_server_url: str) -> None:
    with run_agent(tmp_path, f"general={llama_server_url}", scope="admin") as (url, key, _proc, _log):
        body = {"action": "supervisor.rollback", "arguments": {"job": "x"}}
        as_person = httpx.post(f"{url}/api/approvals", json=body, headers={"Authorization": f"Bearer {key}"})
        assert as_person.status_code == 403 and as_person.json()["error"]["code"] == "not_a_service"
        forged = HttpApprovals(f"{url}/api/approvals", "not-the-secret", timeout_s=5, poll_s=0.2)
        verdict = forged.ask(job="x", action="rollback", risk="high", reason="r", detail="d")
        assert verdict.outcome == "no_gate"  # refused (401): nothing was filed, so nothing is applied
        assert httpx.get(f"{url}/api/approvals", headers={"Authorization": f"Bearer {key}"}).json()["pending"] == []
