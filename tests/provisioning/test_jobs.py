"""Real ansible-playbook runs through ansible-runner against the node itself (ansible_connection=local)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from fleetmind.provisioning import JobEvent
from fleetmind.security import KeyStore
from tests.provisioning.conftest import Api, body, make_settings, start_api


@pytest.fixture
async def ok_api(tmp_path: Path, key_store: KeyStore, api_key: str, marker_dir: Path) -> AsyncIterator[Api]:
    async for a in start_api(make_settings(tmp_path, "ok.yaml"), key_store, api_key):
        yield a


@pytest.fixture
async def fail_api(tmp_path: Path, key_store: KeyStore, api_key: str) -> AsyncIterator[Api]:
    async for a in start_api(make_settings(tmp_path, "fail.yaml"), key_store, api_key):
        yield a


async def test_good_playbook_ends_successful(ok_api: Api, marker_dir: Path) -> None:
    events: list[JobEvent] = []
    ok_api.app.state.events.add_sink(events.append)
    facts = {
        "cores": 2,
        "ram_mb": 2048,
        "cpu_flags": ["sse2", "avx"],
        "disks": [{"name": "vda", "size_bytes": 1 << 30}],
    }
    r = await ok_api.call_home(body("node-ok", ip="10.0.0.1", mac="52:54:00:aa:bb:01", facts=facts))
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["state"] == "queued" and accepted["role"] == "worker"
    assert accepted["status_url"] == "/api/provisioning/status/node-ok"

    job = await ok_api.wait_job(accepted["job_id"])
    assert job["state"] == "successful", job
    assert job["rc"] == 0 and job["error"] is None
    assert any("PLAY RECAP" in line for line in job["output_tail"])
    # the play really ran for this inventory host, on this machine, with gathered facts
    assert (marker_dir / "node-ok").read_text() == "node-ok Linux\n"

    # ansible-runner got the host name as its own argument, never inside a shell string
    command = json.loads((ok_api.settings.runs_dir / accepted["job_id"] / "artifacts/run/command").read_text())
    argv = command["command"]
    assert argv[argv.index("--limit") + 1] == "node-ok"
    assert argv[0] == "ansible-playbook" and argv[-1] == "ok.yaml"

    inventory = yaml.safe_load(ok_api.settings.inventory_path.read_text().replace("!unsafe ", ""))
    host = inventory["all"]["children"]["worker"]["hosts"]["node-ok"]
    assert host["fleetmind_mac"] == "52:54:00:aa:bb:01" and host["fleetmind_facts"]["cores"] == 2
    assert not ok_api.settings.todo_path.exists()

    status = (await ok_api.client.get("/api/provisioning/status/node-ok", headers=ok_api.key_headers)).json()
    assert status["node"]["in_inventory"] and status["node"]["last_state"] == "successful"
    assert [j["id"] for j in status["jobs"]] == [accepted["job_id"]]

    kinds = [e.kind for e in events if e.job_id == accepted["job_id"]]
    assert kinds[0] == "job.queued" and kinds[1] == "job.started" and kinds[-1] == "job.finished"
    assert "job.output" in kinds
    assert events[-1].data["state"] == "successful"

    # the same node calling again is accepted once its job is over, and the inventory does not change
    before = ok_api.settings.inventory_path.read_bytes()
    again = await ok_api.call_home(body("node-ok", ip="10.0.0.1", mac="52:54:00:aa:bb:01", facts=facts))
    assert again.status_code == 202
    assert ok_api.settings.inventory_path.read_bytes() == before
    assert (await ok_api.wait_job(again.json()["job_id"]))["state"] == "successful"
    # ...but not from a machine with another MAC address claiming its name
    r = await ok_api.call_home(body("node-ok", ip="10.0.0.1", mac="52:54:00:aa:bb:99"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "mac_mismatch"


async def test_failing_playbook_ends_failed_with_its_error_in_todo(fail_api: Api) -> None:
    r = await fail_api.call_home(body("node-bad", ip="10.0.0.1"))
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    job = await fail_api.wait_job(job_id)
    assert job["state"] == "failed"
    assert job["rc"] == 2
    assert "data disk /dev/sdz is missing (test failure)" in str(job["error"])
    assert "Check the data disk" in str(job["error"])

    todo = fail_api.settings.todo_path.read_text()
    assert todo.startswith("# Provisioning failures to review")
    assert todo.count("\n## ") == 1
    assert f"node-bad · failed ({job_id})" in todo
    assert "data disk /dev/sdz is missing (test failure)" in todo
    assert "fleetmind provision retry node-bad" in todo
    assert "```text\n" in todo and "PLAY RECAP" in todo

    listing = (await fail_api.client.get("/api/provisioning/status?state=failed", headers=fail_api.key_headers)).json()
    assert [j["id"] for j in listing["jobs"]] == [job_id] and listing["counts"] == {"failed": 1}

    # retry after "fixing": a new job, and a second failure is a second TODO entry
    r = await fail_api.client.post("/api/provisioning/retry/node-bad", headers=fail_api.key_headers)
    assert r.status_code == 202
    second = await fail_api.wait_job(r.json()["job_id"])
    assert second["state"] == "failed"
    assert fail_api.settings.todo_path.read_text().count("\n## ") == 2
    assert (
        await fail_api.client.post("/api/provisioning/retry/nobody", headers=fail_api.key_headers)
    ).status_code == 404

    metrics = (await fail_api.client.get("/metrics")).text
    assert 'fleetmind_provision_jobs_finished_total{state="failed"} 2.0' in metrics
    assert 'fleetmind_provision_call_homes_total{result="accepted"} 1.0' in metrics
