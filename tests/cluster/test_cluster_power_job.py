"""jobs/power.nomad.hcl on the embedded cluster: the real ``python -m fleetmind power agent`` placed by its node-name
constraint, healthy through its /health check, reading the embedded node through the same client calls as on
Nomad, and stopped cleanly (its audit log ends with ``stopped``)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx

from conftest import JOBS_DIR, RunningCluster, group_alive, wait_for
from fleetmind.cluster.jobspec import load_job


def _power_job(rc: RunningCluster, state: Path, node_names: str) -> dict[str, Any]:
    return load_job(
        JOBS_DIR / "power.nomad.hcl",
        {
            "python": sys.executable,
            "state_dir": str(state),
            "nomad_addr": rc.cluster.nomad_addr,
            "nomad_token": rc.cluster.token,
            "metrics_url": "",
            "interval": 1,
            "node_names": node_names,
        },
    )


def _audit(state: Path) -> list[dict[str, Any]]:
    path = state / "power" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_power_job_runs_the_agent_on_the_control_node(running_cluster: RunningCluster, tmp_path: Path) -> None:
    rc = running_cluster
    name = rc.cluster.orchestrator.node.name
    state = tmp_path / "state"
    (state / "provisioning").mkdir(parents=True)
    # this machine is the one-node cluster's control node: the agent observes it and never drains or sleeps it
    (state / "provisioning" / "inventory.yaml").write_text(
        f"all:\n  children:\n    control:\n      hosts:\n        {name}:\n          ansible_host: 127.0.0.1\n"
    )

    # a node-name constraint that this node does not meet: not placed, and the job says why
    rc.client.register_job(_power_job(rc, state, "^some-other-node$"))
    why = wait_for(lambda: rc.client.job("power")["StatusDescription"], what="the refusal")
    assert "constraint not met: ${node.unique.name} regexp ^some-other-node$" in why
    assert rc.client.job_allocations("power") == []

    rc.client.register_job(_power_job(rc, state, f"^{re.escape(name)}$"))
    (instance,) = wait_for(lambda: rc.client.healthy_services("fleetmind-power"), timeout=60, what="a healthy agent")
    health = wait_for(
        lambda: (h := httpx.get(f"{instance.url}/health", timeout=5).json())["rounds"] >= 2 and h,
        what="two decision rounds",
    )
    assert health["status"] == "ok" and health["last_error"] is None, health
    kinds = [line["kind"] for line in _audit(state)]
    assert kinds[0] == "power.started" and "power.error" not in kinds, kinds
    assert rc.client.nodes()[0]["SchedulingEligibility"] == "eligible"  # the control node is never drained

    alloc = rc.alloc("power")
    proc = rc.cluster.orchestrator.allocs[alloc["ID"]].tasks["agent"].proc
    assert proc is not None
    rc.client.stop_job("power")
    wait_for(lambda: rc.client.allocation(alloc["ID"])["ClientStatus"] == "complete", what="the agent stopped")
    assert not group_alive(proc.pid)
    assert _audit(state)[-1]["kind"] == "power.stopped"
    assert rc.client.allocation(alloc["ID"])["TaskStates"]["agent"]["Failed"] is False
