"""Real provisioning of a test host: a node calls home to the API process, and its queued run configures a chroot.

The host is a throwaway Debian (an overlay of tests/infra's cached debootstrap base); the API is the real
``fleetmind provision serve`` process; the run is its own ansible-runner job, reaching the host through the
``fleetmind_chroot`` connection that ``host_vars/<node>.yaml`` beside the inventory names. A good play changes
the host and ends ``successful``; a failing one, against the same host after the node calls home again, ends
``failed`` with its error in TODO.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from fleetmind.provisioning.inventory import Inventory
from tests.conftest import stop_process
from tests.infra.conftest import BASE_CHROOT
from tests.provisioning.chroot_host import CONNECTION_PLUGINS, ChrootHost, processes_in, write_host_vars
from tests.provisioning.conftest import FINAL, Server, api_key_for, server_env, start_server, token_for
from tests.provisioning.test_process import get_job

# the first run on a machine debootstraps the base (minutes, from the network); later runs take seconds
pytestmark = [] if (BASE_CHROOT / "usr/bin/python3").exists() else [pytest.mark.slow]

NODE = "node-chroot"
CALL_HOME = {
    "hostname": NODE,
    "ip": "10.77.0.21",
    "mac": "52:54:00:12:34:56",
    "facts": {"cores": 2, "ram_mb": 2048, "cpu_flags": ["sse4_2"], "disks": [{"name": "vda", "size_bytes": 10**10}]},
}


def wait_final(server: Server, key: str, job_id: str, patience: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + patience
    while (job := get_job(server, key, job_id))["state"] not in FINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['state']}: {server.log.read_text()[-2000:]}")
        time.sleep(0.2)
    return job


def call_home(server: Server, token: str) -> str:
    r = httpx.post(
        f"{server.url}/api/ready-for-provisioning", json=CALL_HOME, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 202, r.text
    job_id: str = r.json()["job_id"]
    return job_id


def test_call_home_provisions_a_chroot_host(tmp_path: Path, servers: list[Server], debian_host: ChrootHost) -> None:
    # something only this host holds, so the play's read proves it ran inside the host, not on this machine
    identity = f"test host {tmp_path.name}"
    debian_host.write("/etc/fleetmind-test/identity", identity + "\n")
    env = server_env(tmp_path, "chroot_ok.yaml", ANSIBLE_CONNECTION_PLUGINS=str(CONNECTION_PLUGINS))
    inventory = Path(env["FLEETMIND_PROVISION_INVENTORY_PATH"])
    write_host_vars(inventory, NODE, debian_host)
    token, key = token_for(env), api_key_for(env)

    # -- a good play: the host is changed, the job ends successful ---------------------------------------------
    server = start_server(env, tmp_path / "server-ok.log")
    servers.append(server)
    ok_id = call_home(server, token)
    job = wait_final(server, key, ok_id)
    assert job["state"] == "successful", job
    assert job["rc"] == 0 and job["error"] is None
    tail = job["output_tail"]
    assert isinstance(tail, list) and any(line.startswith(NODE) and "changed=2" in line for line in tail), job

    # the change is there for the host's own tools to see, and only in this host's layer
    seen = debian_host.run("cat", "/etc/fleetmind/provisioned")
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout == f"{NODE} configured by {ok_id} for {identity}"
    assert debian_host.run("stat", "-c", "%a", "/etc/fleetmind/provisioned").stdout.strip() == "644"
    if debian_host.upper is not None:
        assert (debian_host.upper / "etc/fleetmind/provisioned").is_file()
    assert not (debian_host.base / "etc/fleetmind").exists()
    assert not Path("/etc/fleetmind/provisioned").exists()
    # the API's inventory still holds the address the node sent; the connection came from host_vars
    entry = Inventory(inventory, roles=["worker", "control"]).get(NODE)
    assert entry is not None and entry.ip == "10.77.0.21" and entry.group == "worker"
    stop_process(server.proc)

    # -- a failing play against the same host, after the node calls home again -------------------------------
    env["FLEETMIND_PROVISION_PLAYBOOK_PATH"] = env["FLEETMIND_PROVISION_PLAYBOOK_PATH"].replace("_ok", "_fail")
    server = start_server(env, tmp_path / "server-fail.log")
    servers.append(server)
    fail_id = call_home(server, token)
    job = wait_final(server, key, fail_id)
    assert job["state"] == "failed", job
    assert job["rc"] == 2
    assert job["error"] == f"Check the data disk: data disk /dev/sdz is missing on {NODE} (test failure)"
    # the play got as far as its first task on the host before failing there
    assert debian_host.run("cat", "/etc/fleetmind/attempted").stdout == "attempted\n"
    assert debian_host.run("cat", "/etc/fleetmind/provisioned").stdout.startswith(f"{NODE} configured by {ok_id}")

    todo = Path(env["FLEETMIND_PROVISION_TODO_PATH"]).read_text()
    assert todo.count("\n## ") == 1 and f"· {NODE} · failed ({fail_id})" in todo
    assert f"data disk /dev/sdz is missing on {NODE} (test failure)" in todo
    assert ok_id not in todo
    history = httpx.get(
        f"{server.url}/api/provisioning/status/{NODE}", headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert {(j["id"], j["state"]) for j in history["jobs"]} == {(ok_id, "successful"), (fail_id, "failed")}
    stop_process(server.proc)

    # no run is left inside the host (the fixture then unmounts it, which fails on a busy mount)
    assert processes_in(debian_host.root) == []
