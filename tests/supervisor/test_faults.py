"""Fault injection on the embedded backend with real processes: each fault detected, diagnosed, healed or
correctly escalated, with its audit line (crash loop with the LLM is in test_reflection.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleetmind.cluster.embedded import memlimit
from fleetmind.llm import binaries
from fleetmind.supervisor.audit import read_audit
from tests.cluster.conftest import RunningCluster, wait_for
from tests.supervisor import faults
from tests.supervisor.conftest import make_supervisor, tick_until


def running_alloc(cluster: RunningCluster, job: str) -> dict[str, Any]:
    found = wait_for(
        lambda: [a for a in cluster.client.job_allocations(job) if a["ClientStatus"] == "running"],
        what=f"a running allocation of {job}",
    )
    return found[0]


def test_oom_over_memory_limit_gets_more_memory(cluster: RunningCluster, tmp_path: Path) -> None:
    assert memlimit.available(), "this machine gives no writable memory cgroup: the OOM fault cannot be made"
    sup = make_supervisor(cluster, tmp_path / "state")
    cluster.client.register_job(faults.oom(tmp_path))
    entry = tick_until(sup, "oom")
    assert entry["fault"]["kind"] == "oom"
    assert any(e["oom_killed"] for e in entry["diagnosis"]["events"])
    assert (entry["action"], entry["decided_by"], entry["outcome"]) == ("increase_memory", "rule", "healed")
    task = cluster.client.job("oom")["TaskGroups"][0]["Tasks"][0]
    assert task["Resources"]["MemoryMaxMB"] == 160
    assert [e["job"] for e in read_audit(tmp_path / "state")] == ["oom"]


def test_sigill_switches_to_portable_binary(cluster: RunningCluster, tmp_path: Path) -> None:
    sup = make_supervisor(cluster, tmp_path / "state")
    cluster.client.register_job(faults.sigill(tmp_path))
    entry = tick_until(sup, "sigill")
    assert entry["fault"]["kind"] == "sigill"
    assert "SIGILL" in entry["fault"]["summary"]
    assert (entry["action"], entry["outcome"]) == ("switch_to_portable_binary", "healed")
    assert cluster.client.job("sigill")["TaskGroups"][0]["Tasks"][0]["Config"]["command"].endswith("portable.sh")


def test_port_taken_is_rescheduled_on_another_port(cluster: RunningCluster, tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        sup = make_supervisor(cluster, tmp_path / "state")
        cluster.client.register_job(faults.port_taken(port))
        entry = tick_until(sup, "porttaken")
        assert "address already in use" in str(entry["diagnosis"]).lower()
        assert (entry["action"], entry["rule"], entry["outcome"]) == ("reschedule", "port_taken", "healed")
        alloc = running_alloc(cluster, "porttaken")
        new_port = alloc["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
        assert new_port != port
    finally:
        holder.close()


def test_bad_update_is_rolled_back(cluster: RunningCluster, tmp_path: Path) -> None:
    good, bad = faults.good_then_bad(tmp_path)
    sup = make_supervisor(cluster, tmp_path / "state")
    cluster.client.register_job(good)
    running_alloc(cluster, "badupdate")
    cluster.client.register_job(bad)
    entry = tick_until(sup, "badupdate")
    assert entry["fault"]["kind"] == "crash_loop"
    assert "frobnicate" in str(entry["diagnosis"])
    assert (entry["action"], entry["rule"], entry["outcome"]) == ("rollback", "bad_update", "healed")
    versions = cluster.client.job_versions("badupdate")
    assert versions[0]["Version"] == 2
    assert (
        versions[0]["TaskGroups"][0]["Tasks"][0]["Config"]["args"]
        == good["TaskGroups"][0]["Tasks"][0]["Config"]["args"]
    )


def test_hung_process_is_restarted(cluster: RunningCluster, tmp_path: Path) -> None:
    sup = make_supervisor(cluster, tmp_path / "state")
    cluster.client.register_job(faults.hung(tmp_path))
    alloc = running_alloc(cluster, "hung")
    wait_for(lambda: cluster.client.healthy_services("hung"), what="a passing check")
    assert sup.tick() == []  # healthy: nothing to do
    info = wait_for(lambda: cluster.task_infos(alloc["ID"], "task"), what="the task's info")
    os.kill(info[-1]["pid"], signal.SIGSTOP)
    entry = tick_until(sup, "hung")
    assert entry["fault"]["kind"] == "unhealthy"
    assert (entry["action"], entry["rule"], entry["outcome"]) == ("restart", "hung", "healed")
    assert running_alloc(cluster, "hung")["ID"] != alloc["ID"]


def test_missing_model_switches_to_fallback(cluster: RunningCluster, tmp_path: Path, tiny_model: Path) -> None:
    sup = make_supervisor(cluster, tmp_path / "state")
    cluster.client.register_job(faults.missing_model(binaries.llama_server(), tiny_model))
    entry = tick_until(sup, "missingmodel")
    assert entry["diagnosis"]["model"] == {"path": "/nonexistent/models/gone.gguf", "exists": False}
    assert (entry["action"], entry["rule"], entry["outcome"]) == ("switch_to_fallback_model", "missing_model", "healed")
    assert cluster.client.healthy_services("missingmodel")


@pytest.fixture
def full_tmpfs(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    assert os.geteuid() == 0 and shutil.which("mount"), "mounting the small tmpfs needs root"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        _fill(mount)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> None:
    with (mount / "filler").open("wb") as fh:
        try:
            while True:
                fh.write(b"0" * 65536)
                fh.flush()
        except OSError:
            pass


def test_state_dir_full_is_escalated_with_a_case(cluster: RunningCluster, tmp_path: Path, full_tmpfs: Path) -> None:
    state = tmp_path / "state"
    sup = make_supervisor(cluster, state, disk_dir=full_tmpfs)  # it measures the full disk, writes elsewhere
    cluster.client.register_job(faults.disk_full(full_tmpfs))
    entry = tick_until(sup, "diskfull")
    assert entry["diagnosis"]["state_dir"]["free_mb"] < 16
    assert (entry["action"], entry["rule"], entry["outcome"]) == ("mark_failed_and_alert", "disk_full", "escalated")
    assert sup.tick() == []  # escalated: not retried until a person changes the job
