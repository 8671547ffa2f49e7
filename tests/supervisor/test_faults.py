"""Fault injection on the embedded backend with real processes: each fault detected, diagnosed, healed or
correctly escalated, with its audit line (crash loop with the LLM is in test_reflection.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetmind.cluster.embedded import memlimit
from fleetmind.llm import binaries
from fleetmind.llm.cpu_fit import RECORD, SET_ASIDE, cpu_info, expected_variant
from fleetmind.llm.proof import variants as llama_variants
from fleetmind.supervisor.audit import read_audit
from fleetmind.supervisor.cases import load_cases
from fleetmind.supervisor.diagnose import llama_bin_dir
from tests.cluster.conftest import RunningCluster, wait_for
from tests.conftest import free_port
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


def _tmpfs(mount: Path, size: str) -> None:
    mount.mkdir()
    assert os.geteuid() == 0 and shutil.which("mount"), "mounting the small tmpfs needs root"
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)


@pytest.fixture
def full_tmpfs(tmp_path: Path):
    mount = tmp_path / "small"
    _tmpfs(mount, "2m")
    try:
        _fill(mount)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_state_dir(tmp_path: Path):
    """A 24 MB tmpfs the cluster keeps its logs and allocation folders in."""
    mount = tmp_path / "small-state"
    _tmpfs(mount, "24m")
    try:
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
    assert entry["diagnosis"]["garbage"]["bytes"] == 0  # nothing of the cluster's on that disk: collecting can't help
    assert (entry["action"], entry["rule"], entry["outcome"]) == ("mark_failed_and_alert", "disk_full", "escalated")
    assert "garbage collection would free 0.0 MB" in entry["reason"]
    (case,) = load_cases(state)  # the escalation became a YAML test case: its diagnosis in, the rule's action out
    assert case.expected == "mark_failed_and_alert" and case.diagnostics["job"] == "diskfull"
    assert case.diagnostics["state_dir"] == entry["diagnosis"]["state_dir"]
    assert sup.tick() == []  # escalated: not retried until a person changes the job


def test_state_dir_full_of_dead_allocations_logs_is_reclaimed(tmp_path: Path, small_state_dir: Path) -> None:
    cluster = RunningCluster(small_state_dir)  # its logs and allocation folders live on the small disk
    try:
        sup = make_supervisor(cluster, tmp_path / "state", disk_dir=small_state_dir)
        faults.fill_with_logs(cluster.client, small_state_dir)
        assert (small_state_dir / "chatter.main.task.stdout.log").stat().st_size > 20 * 2**20
        cluster.client.register_job(faults.disk_full(small_state_dir))
        entry = tick_until(sup, "diskfull")
        assert entry["diagnosis"]["state_dir"]["free_mb"] < 6  # a quarter of the disk
        assert entry["diagnosis"]["garbage"]["allocations"] == 1
        assert entry["diagnosis"]["garbage"]["bytes"] > 20 * 2**20
        assert (entry["action"], entry["rule"], entry["decided_by"]) == ("reclaim_disk", "disk_full", "rule")
        assert entry["outcome"] == "healed" and entry["risk"] == "low"
        assert entry["freed_bytes"] > 20 * 2**20
        assert not list(small_state_dir.glob("chatter.*"))  # the dead job's log went, with the job
        assert [j["ID"] for j in cluster.client.jobs()] == ["diskfull"]
        running_alloc(cluster, "diskfull")
        assert (small_state_dir / "state.bin").stat().st_size == 8 * 2**20  # it wrote its state this time
        assert [e["action"] for e in read_audit(tmp_path / "state")] == ["reclaim_disk"]
    finally:
        cluster.close()


def test_sigill_of_a_llama_cpp_variant_sets_it_aside_and_restarts(
    cluster: RunningCluster, tmp_path: Path, tiny_model: Path
) -> None:
    bin_dir = tmp_path / "bin"
    real = [v.removeprefix("libggml-cpu-").removesuffix(".so") for v in faults.llama_build_with_sigill_variant(bin_dir)]
    sup = make_supervisor(cluster, tmp_path / "state", fallback_model=tiny_model)
    port = free_port()
    cluster.client.register_job(faults.llama_expert(bin_dir / "llama-server", tiny_model, port))
    entry = tick_until(sup, "llama-expert")
    assert entry["fault"]["kind"] == "sigill"
    assert "sapphirerapids" in entry["diagnosis"]["llama_cpp"]["variants"]
    assert (entry["action"], entry["rule"], entry["decided_by"]) == ("set_aside_cpu_variant", "sigill", "rule")
    assert entry["outcome"] == "healed"
    # The heal only proves: the crashing variant goes, every real one stays (none is re-timed and set aside as
    # "slower" on the tiny model's noise), and ggml loads the best one this CPU reports.
    assert entry["set_aside"] == {"sapphirerapids": "killed by SIGILL on this CPU"}
    assert (bin_dir / SET_ASIDE / "libggml-cpu-sapphirerapids.so").is_file()
    assert sorted(p.name for p in (bin_dir / SET_ASIDE).iterdir()) == ["libggml-cpu-sapphirerapids.so"]
    assert sorted(llama_variants(bin_dir)) == sorted(real)
    assert entry["variant"] == expected_variant(cpu_info(), real)
    record = json.loads((bin_dir / RECORD).read_text())
    assert record["variant"] == entry["variant"] and record["measured"] == {}
    (served,) = cluster.client.healthy_services("expert-tiny")
    assert served.port == port
    assert cluster.client.job("llama-expert")["Version"] == 0  # the job is unchanged: the build was fixed


def test_the_build_is_found_behind_the_expert_launcher(tmp_path: Path) -> None:
    """With a fallback model `up` puts the launcher in front; the diagnosis finds the same build after its ``--``."""
    server = tmp_path / "bin" / "llama-server"
    server.parent.mkdir()
    server.write_text("")
    launcher = [sys.executable, "-m", "fleetmind.cluster.expert_launcher", "--min-workers", "0", "--fallback-model"]
    assert llama_bin_dir([*launcher, "/m/light.gguf", "--", str(server), "-m", "/m/big.gguf"]) == server.parent
    assert llama_bin_dir([sys.executable, "-c", "print()"]) is None
