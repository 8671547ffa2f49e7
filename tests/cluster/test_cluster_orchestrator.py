"""The embedded orchestrator with real processes: restarts, failure, health-driven discovery, clean stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from conftest import HERE, SEC, RunningCluster, group_alive, pid_alive, server_job, wait_for


def _task_state(rc: RunningCluster, job_id: str) -> dict[str, Any]:
    return rc.alloc(job_id)["TaskStates"]["server"]


def _events(state: dict[str, Any]) -> list[str]:
    return [e["Type"] for e in state["Events"]]


def test_runtime_variables_logs_and_dirs(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    job = server_job(
        "interp",
        extra_args=["${NOMAD_JOB_NAME}", "${NOMAD_TASK_NAME}", "${NOMAD_ADDR_http}"],
        env={"FLEETMIND_TEST_DIRS": "${NOMAD_ALLOC_DIR}|${NOMAD_TASK_DIR}|${NOMAD_IP_http}"},
    )
    rc.client.register_job(job)
    alloc = rc.alloc("interp")
    info = wait_for(lambda: rc.task_infos(alloc["ID"], "server"), what="task info")[0]
    port = alloc["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
    assert info["argv"] == [str(port), "interp", "server", f"127.0.0.1:{port}"]
    env = info["env"]
    assert env["NOMAD_PORT_http"] == env["NOMAD_HOST_PORT_http"] == str(port)
    alloc_dir, task_dir, ip = env["FLEETMIND_TEST_DIRS"].split("|")
    assert alloc_dir == env["NOMAD_ALLOC_DIR"] and Path(alloc_dir).is_dir()
    assert task_dir == env["NOMAD_TASK_DIR"] and Path(task_dir).is_dir()
    assert ip == "127.0.0.1" and env["NOMAD_JOB_NAME"] == "interp"
    stdout = rc.logs_dir / "interp.web.server.stdout.log"
    wait_for(lambda: "serving on" in stdout.read_text() if stdout.exists() else False, what="stdout log")
    assert (rc.logs_dir / "interp.web.server.stderr.log").exists()


def test_kill_9_is_restarted_and_visible_in_the_allocation(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    rc.client.register_job(server_job("crashy"))
    alloc_id = rc.alloc("crashy")["ID"]
    first = wait_for(lambda: rc.task_infos(alloc_id, "server"), what="first start")[0]
    os.kill(first["pid"], signal.SIGKILL)
    infos = wait_for(
        lambda: len(rc.task_infos(alloc_id, "server")) >= 2 and rc.task_infos(alloc_id, "server"),
        what="restart",
    )
    assert infos[-1]["pid"] != first["pid"]
    state = wait_for(lambda: (s := _task_state(rc, "crashy"))["State"] == "running" and s, what="running again")
    assert state["Restarts"] == 1 and not state["Failed"]
    assert state["LastRestart"] != "0001-01-01T00:00:00Z"
    terminated = next(e for e in state["Events"] if e["Type"] == "Terminated")
    assert terminated["Signal"] == 9 and terminated["ExitCode"] == 137
    assert _events(state)[-3:] == ["Terminated", "Restarting", "Started"]
    assert rc.client.allocation(alloc_id)["ClientStatus"] == "running"


def test_a_task_that_keeps_crashing_fails_per_its_policy(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    job = server_job("doomed", restart={"Attempts": 2, "Interval": 600 * SEC, "Delay": SEC // 20, "Mode": "fail"})
    job["TaskGroups"][0]["Tasks"][0]["Config"] = {
        "command": sys.executable,
        "args": ["-c", "raise SystemExit(3)"],
    }
    rc.client.register_job(job)
    alloc = wait_for(lambda: (a := rc.alloc("doomed"))["ClientStatus"] == "failed" and a, what="failed alloc")
    state = alloc["TaskStates"]["server"]
    assert state["State"] == "dead" and state["Failed"] is True
    assert state["Restarts"] == 2
    assert _events(state).count("Terminated") == 3
    not_restarting = next(e for e in state["Events"] if e["Type"] == "Not Restarting")
    assert not_restarting["FailsTask"] is True and 'mode is "fail"' in not_restarting["DisplayMessage"]
    assert all(e["ExitCode"] == 3 for e in state["Events"] if e["Type"] == "Terminated")
    assert rc.client.healthy_services("doomed") == []
    assert "doomed" not in rc.cluster.registry.catalog()  # a dead allocation's services are deregistered


def test_delay_mode_waits_instead_of_failing(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    job = server_job("patient", restart={"Attempts": 1, "Interval": 30 * SEC, "Delay": SEC // 20, "Mode": "delay"})
    job["TaskGroups"][0]["Tasks"][0]["Config"] = {
        "command": sys.executable,
        "args": ["-c", "raise SystemExit(1)"],
    }
    rc.client.register_job(job)

    def waiting() -> dict[str, Any] | None:
        state = _task_state(rc, "patient")
        delayed = [e for e in state["Events"] if e["Type"] == "Restarting" and "delay" in e["RestartReason"]]
        return state if delayed else None

    state = wait_for(waiting, what="a delayed restart")
    assert state["State"] == "pending" and not state["Failed"]
    delayed = [e for e in state["Events"] if e["Type"] == "Restarting"][-1]
    assert delayed["StartDelay"] > SEC  # the rest of the 30s interval, not the 50ms delay
    assert rc.alloc("patient")["ClientStatus"] == "pending"


def test_service_is_found_by_tag_within_one_check_interval(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    rc.client.register_job(server_job("tagged", service="svc-tagged", tags=["expert", "expert:t"], interval_s=1))
    alloc = rc.alloc("tagged")
    port = alloc["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
    wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), what="the task to listen")
    check = next(iter(rc.cluster.registry.checks.values()))
    runs_when_listening = check.runs
    found = wait_for(lambda: rc.client.services_by_tag("expert:t"), what="service by tag")
    # Found no later than the first check run after the task listened: within one check interval.
    assert check.runs <= runs_when_listening + 1
    assert [(s.name, s.port, s.tags) for s in found] == [("svc-tagged", port, ("expert", "expert:t"))]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 600
    except httpx.HTTPError:
        return False


def test_failing_check_drops_out_of_passing_and_new_service_appears(
    running_cluster: RunningCluster, tmp_path: Path
) -> None:
    rc = running_cluster
    flip = tmp_path / "fail-a"
    rc.client.register_job(server_job("a", tags=["pool"], env={"HEALTH_FAIL_FILE": str(flip)}))
    wait_for(lambda: rc.client.services_by_tag("pool"), what="a passing")
    alloc_a = rc.alloc("a")
    pid_a = rc.task_infos(alloc_a["ID"], "server")[0]["pid"]

    flip.write_text("now")
    wait_for(lambda: not rc.client.healthy_services("a"), what="a to leave passing")
    assert rc.cluster.registry.catalog()["a"] == ["pool"]  # still registered, only not passing

    rc.client.register_job(server_job("b", tags=["pool"]))
    found = wait_for(lambda: [s.name for s in rc.client.services_by_tag("pool")] == ["b"], what="b passing")
    assert found
    assert pid_alive(pid_a) and rc.alloc("a")["TaskStates"]["server"]["Restarts"] == 0  # nothing was restarted

    flip.unlink()
    wait_for(lambda: [s.name for s in rc.client.services_by_tag("pool")] == ["a", "b"], what="a back")


def test_check_restart_restarts_an_unhealthy_task(running_cluster: RunningCluster, tmp_path: Path) -> None:
    rc = running_cluster
    flip = tmp_path / "fail"
    job = server_job(
        "sick",
        env={"HEALTH_FAIL_FILE": str(flip)},
        interval_s=0.2,
        check_restart={"Limit": 2, "Grace": 0, "IgnoreWarnings": False},
    )
    rc.client.register_job(job)
    wait_for(lambda: rc.client.healthy_services("sick"), what="healthy")
    flip.write_text("x")
    state = wait_for(lambda: (s := _task_state(rc, "sick"))["Restarts"] >= 1 and s, what="check restart")
    signaled = next(e for e in state["Events"] if e["Type"] == "Restart Signaled")
    assert "healthcheck" in signaled["RestartReason"]
    flip.unlink()
    wait_for(lambda: rc.client.healthy_services("sick"), what="healthy after restart")


def test_stop_kills_the_whole_process_group(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    rc.client.register_job(server_job("family", extra_args=["--spawn-child", "--ignore-term"], kill_timeout_s=0.5))
    alloc_id = rc.alloc("family")["ID"]
    info = wait_for(lambda: rc.task_infos(alloc_id, "server"), what="start")[0]
    assert pid_alive(info["child"]) and info["pgid"] == info["pid"]
    rc.client.stop_job("family")
    alloc = wait_for(lambda: (a := rc.client.allocation(alloc_id))["ClientStatus"] == "complete" and a, what="stop")
    assert not group_alive(info["pgid"]) and not pid_alive(info["child"]) and not pid_alive(info["pid"])
    events = _events(alloc["TaskStates"]["server"])
    assert events[-2:] == ["Killing", "Killed"]
    assert alloc["DesiredStatus"] == "stop"
    assert "family" not in rc.cluster.registry.catalog()


def test_cluster_stop_leaves_no_process(tmp_path: Path) -> None:
    rc = RunningCluster(tmp_path / "logs")
    try:
        rc.client.register_job(server_job("one", extra_args=["--spawn-child"]))
        rc.client.register_job(server_job("two", extra_args=["--ignore-term"], kill_timeout_s=0.3))
        infos = [wait_for(lambda j=j: rc.task_infos(rc.alloc(j)["ID"], "server"), what=j)[0] for j in ("one", "two")]
    finally:
        rc.close()
    for info in infos:
        assert not group_alive(info["pgid"])
        assert info["child"] is None or not pid_alive(info["child"])


def _start_parent(tmp_path: Path, extra_args: list[str]) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    job_file, ready = tmp_path / "job.json", tmp_path / "ready"
    job_file.write_text(json.dumps(server_job("orphan-check", extra_args=extra_args, kill_timeout_s=0.5)))
    # stderr goes to a file, never to a pipe nobody reads: the cluster's logs (one access line per poll) would fill
    # a pipe under load and block the parent mid-shutdown.
    stderr = tmp_path / "parent.stderr.log"
    with stderr.open("wb") as err:
        parent = subprocess.Popen(
            [sys.executable, str(HERE / "run_cluster.py"), str(tmp_path / "logs"), str(job_file), str(ready)],
            stderr=err,
        )
    wait_for(lambda: ready.exists() or parent.poll() is not None, what="the cluster process")
    assert parent.poll() is None, stderr.read_text(errors="replace")
    infos = wait_for(lambda: list((tmp_path / "logs" / "allocs").glob("*/server/local/info-*.json")), what="info")
    return parent, json.loads(infos[0].read_text())


def test_ctrl_c_of_the_parent_leaves_no_process(tmp_path: Path) -> None:
    parent, info = _start_parent(tmp_path, ["--spawn-child", "--ignore-term"])
    parent.send_signal(signal.SIGINT)
    parent.wait(30)
    assert not group_alive(info["pgid"]) and not pid_alive(info["child"])


def test_kill_9_of_the_parent_takes_the_task_down(tmp_path: Path) -> None:
    parent, info = _start_parent(tmp_path, [])
    parent.kill()
    parent.wait(30)
    wait_for(lambda: not pid_alive(info["pid"]), what="the task to die with its parent")
