"""The service as it runs for real: started by ``fleetmind provision serve``, reached by ``pxe/call-home.sh``.

Also: a kill -9 of the API in the middle of a playbook run, and a restart on the same state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from fleetmind.provisioning.inventory import Inventory, load_yaml
from fleetmind.provisioning.runner import run_processes
from tests.conftest import free_port
from tests.provisioning.conftest import FINAL, Server, api_key_for, cli, server_env, start_server, token_for

SCRIPT = Path(__file__).resolve().parents[2] / "pxe" / "call-home.sh"


def get_job(server: Server, key: str, job_id: str) -> dict[str, object]:
    r = httpx.get(f"{server.url}/api/provisioning/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    job: dict[str, object] = r.json()
    return job


def wait_job(server: Server, key: str, job_id: str, states: set[str], patience: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + patience
    while True:
        job = get_job(server, key, job_id)
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is {job['state']}, not {states}: {server.log.read_text()[-2000:]}")
        time.sleep(0.2)


def wait_for(predicate: object, patience: float = 60) -> None:
    deadline = time.monotonic() + patience
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.1)


def test_call_home_script_against_the_served_cli(tmp_path: Path, servers: list[Server]) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    env = server_env(tmp_path, "ok.yaml", FLEETMIND_TEST_MARKER_DIR=str(markers))
    made = cli("token", "create", "--single-use", "--ttl", "1h", env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("fmp-") and "shown once" in made.stderr
    assert token not in cli("token", "list", env=env).stdout

    port = free_port()
    state = tmp_path / "node" / "called-home"
    script_env = {
        "PATH": os.environ["PATH"],
        "FLEETMIND_CALLHOME_ENV": str(tmp_path / "absent.env"),
        "FLEETMIND_PROVISION_URL": f"http://127.0.0.1:{port}",
        "FLEETMIND_ENROLMENT_TOKEN": token,
        "FLEETMIND_CALLHOME_STATE": str(state),
        "FLEETMIND_CALLHOME_DELAY": "1",
        "FLEETMIND_CALLHOME_MAX_DELAY": "2",
        "FLEETMIND_CALLHOME_MAX_TRIES": "60",
        "FLEETMIND_NODE_HOSTNAME": "Node-Script",
        # this machine reaches the API over loopback, an address no node may claim: the node's LAN address instead
        "FLEETMIND_NODE_IP": "10.0.0.1",
    }
    err = tmp_path / "call-home.err"
    with err.open("wb") as fh:
        script = subprocess.Popen(["dash", str(SCRIPT)], env=script_env, stderr=fh, start_new_session=True)
    try:
        # the node boots before the API is up: it must wait and retry, not give up
        wait_for(lambda: "not answering" in err.read_text())
        servers.append(start_server(env, tmp_path / "server.log", port))
        assert script.wait(timeout=90) == 0, err.read_text()
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
    server = servers[0]
    assert "accepted" in err.read_text()
    accepted = json.loads(state.read_text())
    assert accepted["hostname"] == "node-script"

    key = api_key_for(env)
    job = wait_job(server, key, accepted["job_id"], FINAL)
    assert job["state"] == "successful", job
    assert (markers / "node-script").read_text().startswith("node-script ")

    # the script's facts came from this machine and landed in the inventory
    hosts = Inventory(Path(env["FLEETMIND_PROVISION_INVENTORY_PATH"]), roles=["worker", "control"]).hosts()
    facts = hosts["node-script"].vars["fleetmind_facts"]
    assert facts["cores"] == os.cpu_count() and facts["ram_mb"] > 0 and facts["cpu_flags"]

    # the CLI sees the same state
    jobs = json.loads(cli("jobs", "--json", env=env).stdout)
    assert [(j["id"], j["state"]) for j in jobs] == [(accepted["job_id"], "successful")]
    nodes = json.loads(cli("nodes", "--json", env=env).stdout)
    assert nodes == [
        {
            "hostname": "node-script",
            "group": "worker",
            "ip": "10.0.0.1",
            "mac": None,
            "last_state": "successful",
        }
    ]
    retried = cli("retry", "node-script", "--url", server.url, "--api-key", key, env=env)
    assert retried.returncode == 0 and retried.stdout.startswith("queued job_"), retried.stderr
    refused = cli("retry", "node-script", "--url", server.url, "--api-key", "wrong", env=env)
    assert refused.returncode == 1 and "401" in refused.stderr

    # first boot only: a second run does nothing; forcing it with the spent single-use token is refused
    again = subprocess.run(["dash", str(SCRIPT)], env=script_env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already called home" in again.stderr
    forced = subprocess.run(
        ["dash", str(SCRIPT), "--force"], env=script_env, capture_output=True, text=True, timeout=60
    )
    assert forced.returncode == 1 and "refused (401)" in forced.stderr


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_kill_9_during_a_run_then_restart(tmp_path: Path, servers: list[Server]) -> None:
    env = server_env(tmp_path, "slow.yaml", FLEETMIND_PROVISION_CONCURRENCY="1")
    token, key = token_for(env), api_key_for(env)
    auth = {"Authorization": f"Bearer {token}"}
    first = start_server(env, tmp_path / "server-1.log")
    servers.append(first)

    r = httpx.post(
        f"{first.url}/api/ready-for-provisioning",
        json={"hostname": "node-slow", "ip": "10.0.0.1"},
        headers=auth,
    )
    assert r.status_code == 202, r.text
    running_id = r.json()["job_id"]
    wait_job(first, key, running_id, {"running"})
    run_dir = (Path(env["FLEETMIND_PROVISION_RUNS_DIR"]) / running_id).resolve()
    # the playbook's task (sleep 300) is running on the node
    wait_for(lambda: any(b"sleep" in _cmdline(p) for p in run_processes(run_dir)))

    busy = httpx.post(
        f"{first.url}/api/ready-for-provisioning",
        json={"hostname": "node-slow", "ip": "10.0.0.1"},
        headers=auth,
    )
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "job_in_progress"
    r = httpx.post(
        f"{first.url}/api/ready-for-provisioning",
        json={"hostname": "node-next", "ip": "10.0.0.2"},
        headers=auth,
    )
    assert r.status_code == 202
    queued_id = r.json()["job_id"]
    assert get_job(first, key, queued_id)["state"] == "queued"

    inventory = Path(env["FLEETMIND_PROVISION_INVENTORY_PATH"])
    before = inventory.read_bytes()
    first.proc.send_signal(signal.SIGKILL)
    assert first.proc.wait(timeout=10) == -signal.SIGKILL

    second = start_server(env, tmp_path / "server-2.log")
    servers.append(second)
    job = get_job(second, key, running_id)
    assert job["state"] == "interrupted"
    assert job["error"] == "the provisioning API stopped while this job was running"
    # the run the dead API left behind was stopped, so it cannot go on changing the node
    wait_for(lambda: not [p for p in run_processes(run_dir) if _alive(p)])
    # the job queued before the crash was not lost: it runs now (its playbook is on the node)
    wait_job(second, key, queued_id, {"running", "successful"})
    queued_dir = (Path(env["FLEETMIND_PROVISION_RUNS_DIR"]) / queued_id).resolve()
    wait_for(lambda: any(b"sleep" in _cmdline(p) for p in run_processes(queued_dir)))
    assert inventory.read_bytes() == before
    assert set(load_yaml(before.decode())["all"]["children"]["worker"]["hosts"]) == {"node-slow", "node-next"}

    # the interrupted node can call home again
    r = httpx.post(
        f"{second.url}/api/ready-for-provisioning",
        json={"hostname": "node-slow", "ip": "10.0.0.1"},
        headers=auth,
    )
    assert r.status_code == 202


@pytest.mark.parametrize("shell", ["dash", "sh"])
def test_call_home_script_gives_up_and_reports_bad_configuration(shell: str, tmp_path: Path) -> None:
    base = {"PATH": os.environ["PATH"], "FLEETMIND_CALLHOME_ENV": str(tmp_path / "absent.env")}
    no_url = subprocess.run([shell, str(SCRIPT)], env=base, capture_output=True, text=True, timeout=30)
    assert no_url.returncode == 2 and "FLEETMIND_PROVISION_URL" in no_url.stderr
    unreachable = {
        **base,
        "FLEETMIND_PROVISION_URL": f"http://127.0.0.1:{free_port()}",
        "FLEETMIND_ENROLMENT_TOKEN": "fmp-x",
        "FLEETMIND_CALLHOME_STATE": str(tmp_path / "called-home"),
        "FLEETMIND_CALLHOME_DELAY": "0",
        "FLEETMIND_CALLHOME_MAX_TRIES": "2",
    }
    gave_up = subprocess.run([shell, str(SCRIPT)], env=unreachable, capture_output=True, text=True, timeout=30)
    assert gave_up.returncode == 3 and "giving up after 2 tries" in gave_up.stderr
    assert not (tmp_path / "called-home").exists()
