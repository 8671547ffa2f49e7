"""A task that dies explains itself: the task event carries the signal, and status, /api/status and the log say why."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from conftest import SEC, RunningCluster, server_job, wait_for
from fleetmind.cluster.causes import task_cause
from fleetmind.exits import describe_exit
from fleetmind.mission_control.cluster import ClusterView

# What a llama-server built for another CPU does: a line of start-up log, then an illegal instruction.
SIGILL_TASK = 'echo "llama threadpool init, n_threads = 2" >&2; kill -ILL $$'


def _sigill_job(job_id: str) -> dict[str, object]:
    job = server_job(job_id, restart={"Attempts": 1, "Interval": 600 * SEC, "Delay": SEC // 20, "Mode": "fail"})
    job["TaskGroups"][0]["Tasks"][0]["Config"] = {"command": "/bin/sh", "args": ["-c", SIGILL_TASK]}  # type: ignore[index]
    return job


def test_sigill_is_named_in_the_event_the_log_status_and_api_status(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    rc.client.register_job(_sigill_job("illegal"))
    alloc = wait_for(lambda: (a := rc.alloc("illegal"))["ClientStatus"] == "failed" and a, what="failed alloc")
    state = alloc["TaskStates"]["server"]
    terminated = [e for e in state["Events"] if e["Type"] == "Terminated"]
    assert len(terminated) == 2  # the first run and its one restart
    for event in terminated:
        assert event["Signal"] == signal.SIGILL == 4
        assert event["ExitCode"] == 128 + 4
        assert event["DisplayMessage"] == "Exit Code: 132, Signal: 4"  # Nomad's own wording is kept
        assert "killed by SIGILL (illegal instruction" in event["Details"]["cause"]
        assert "llama threadpool init" in event["Details"]["cause"]  # the last lines of its stderr

    cause = task_cause(state)
    assert cause is not None and cause.fatal and cause.crashes == 2 and cause.signal == 4
    assert "CPU instructions this machine cannot run" in cause.text and "not restarting" in cause.text

    # The task's own log says it where a user looks first.
    log = next(rc.logs_dir.glob("illegal.*.server.stderr.log")).read_text()
    assert "[fleetmind]" in log and "killed by SIGILL (illegal instruction" in log

    # Mission Control's cluster view (/api/status) carries the cause per task.
    view = ClusterView(client=rc.client, ttl_s=0)
    snapshot = asyncio.run(view.snapshot())
    task = next(t for j in snapshot.jobs if j.id == "illegal" for t in j.tasks)
    assert task.failed and task.cause is not None and "SIGILL" in task.cause

    # `fleetmind status` names it too.
    env = {
        **os.environ,
        "NOMAD_ADDR": rc.cluster.nomad_addr,
        "CONSUL_HTTP_ADDR": rc.cluster.consul_addr,
        "NOMAD_TOKEN": rc.cluster.token,
        "CONSUL_HTTP_TOKEN": rc.cluster.token,
    }
    out = subprocess.run(
        [sys.executable, "-m", "fleetmind", "status"], env=env, capture_output=True, text=True, check=True
    ).stdout
    row = next(line for line in out.splitlines() if "illegal" in line and "server" in line)
    assert "dead (failed)" in row and "SIGILL" in row
    assert any(line.startswith("illegal/server: killed by SIGILL (illegal instruction") for line in out.splitlines())


def test_causes_in_words() -> None:
    assert describe_exit(137, signal.SIGKILL).startswith("killed by SIGKILL (killed outright, most often by the kernel")
    assert describe_exit(139, signal.SIGSEGV).startswith("killed by SIGSEGV (segmentation fault")
    text = describe_exit(1, 0, "loading model\nerror: failed to open model.gguf\n")
    assert text == "exited with code 1; last output: loading model | error: failed to open model.gguf"
    assert describe_exit(0) == "exited normally (code 0)"
    clean_stop = {"Events": [{"Type": "Terminated", "ExitCode": 0, "Signal": 0}], "State": "dead", "Failed": False}
    assert task_cause(clean_stop) is None
