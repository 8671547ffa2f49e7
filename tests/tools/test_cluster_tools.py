"""cluster_status, job_logs, restart_job and scale_job against the real embedded orchestrator (Nomad/Consul APIs)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.base import ToolContext
from fleetmind.tools.runner import ToolRunner
from tests.cluster.conftest import RunningCluster, server_job, wait_for

from .conftest import MakeRunner, approve_next, run_ok


@pytest.fixture
def cluster(tmp_path: Path, context: ToolContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningCluster]:
    running = RunningCluster(tmp_path / "cluster-logs")
    # The agent's job gets the cluster token in its env, as Nomad's and Consul's own clients read it.
    monkeypatch.setenv("NOMAD_TOKEN", running.cluster.token)
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", running.cluster.token)
    context.consul_addr, context.nomad_addr = running.cluster.consul_addr, running.cluster.nomad_addr
    context.cluster_logs_dir = running.logs_dir
    try:
        yield running
    finally:
        running.close()


def running_allocs(cluster: RunningCluster, job_id: str) -> list[str]:
    return [a["ID"] for a in cluster.client.job_allocations(job_id) if a["ClientStatus"] == "running"]


async def test_status_logs_restart_scale(make_runner: MakeRunner, cluster: RunningCluster) -> None:
    cluster.client.register_job(server_job("web"))
    first = await asyncio.to_thread(wait_for, lambda: running_allocs(cluster, "web"), what="web running")
    broker = ApprovalBroker(timeout_s=10)
    runner: ToolRunner = make_runner(approvals=broker)

    status = await run_ok(runner, "cluster_status", {})
    [job] = status["jobs"]
    assert job["id"] == "web" and job["status"] == "running" and status["running"] == 1
    assert job["allocations"][0]["id"] == first[0]

    logs = await run_ok(runner, "job_logs", {"job_id": "web", "type": "stderr", "lines": 200})
    [entry] = logs["logs"]
    assert entry["task"] == "server" and entry["alloc"] == first[0] and entry["source"] != "none"
    missing = await runner.run("job_logs", {"job_id": "nope"}, requester="t")
    assert missing.status == "error" and "not found" in (missing.error or "")

    restarted, _ = await asyncio.gather(
        runner.run("restart_job", {"job_id": "web"}, requester="agent"), approve_next(broker)
    )
    assert restarted.status == "ok" and restarted.output["replaced_allocations"] == first
    await asyncio.to_thread(
        wait_for, lambda: (r := running_allocs(cluster, "web")) and r[0] != first[0], what="a new allocation"
    )

    scaled, _ = await asyncio.gather(
        runner.run("scale_job", {"job_id": "web", "count": 2}, requester="agent"), approve_next(broker)
    )
    assert scaled.status == "ok" and (scaled.output["from"], scaled.output["to"]) == (1, 2)
    await asyncio.to_thread(wait_for, lambda: len(running_allocs(cluster, "web")) == 2, what="two instances")
    assert cluster.client.job("web")["TaskGroups"][0]["Count"] == 2

    denied, _ = await asyncio.gather(
        runner.run("scale_job", {"job_id": "web", "count": 0}, requester="agent"), approve_next(broker, approve=False)
    )
    assert denied.status == "denied" and cluster.client.job("web")["TaskGroups"][0]["Count"] == 2


async def test_unreachable_cluster_is_a_clear_error(runner: ToolRunner, context: ToolContext) -> None:
    context.nomad_addr, context.consul_addr = "http://127.0.0.1:9", "127.0.0.1:9"
    outcome = await runner.run("cluster_status", {}, requester="t")
    assert outcome.status == "error" and "127.0.0.1:9" in (outcome.error or "")
