"""The embedded orchestrator's reads, in Nomad's API shapes: jobs (``Job``, ``JobListStub``, versions, summary),
allocations (``AllocationListStub``, ``Allocation``), evaluations and the node. A mixin of
:class:`~fleetmind.cluster.embedded.orchestrator.Orchestrator`, which holds the state they read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetmind.cluster.embedded.allocation import AllocRunner
from fleetmind.cluster.embedded.evals import Evaluations
from fleetmind.cluster.embedded.index import IndexClock
from fleetmind.cluster.embedded.node import EmbeddedNode

__all__ = ["JobInvalid", "JobRecord", "NotFound", "OrchestratorViews"]


class JobInvalid(ValueError):
    """A submitted job cannot run here; the API answers 400 with this message."""


class NotFound(LookupError):
    """No job or allocation with that ID."""


@dataclass
class JobRecord:
    job: dict[str, Any]
    create_index: int
    modify_index: int
    job_modify_index: int
    submit_time: int
    version: int = 0
    stop: bool = False
    allocs: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # every version, oldest first (for revert)
    blocked: dict[str, str] = field(default_factory=dict)  # group -> why it could not be placed


class OrchestratorViews:
    """Reads over the orchestrator's jobs, allocations, evaluations and node."""

    jobs: dict[str, JobRecord]
    allocs: dict[str, AllocRunner]
    evals: Evaluations
    node: EmbeddedNode
    clock: IndexClock

    def _record(self, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if record is None:
            raise NotFound(f"job not found: {job_id}")
        return record

    def _job_allocs(self, job_id: str) -> list[AllocRunner]:
        return sorted((a for a in self.allocs.values() if a.job["ID"] == job_id), key=lambda a: -a.create_index)

    def _status(self, record: JobRecord) -> str:
        allocs = self._job_allocs(record.job["ID"])
        if any(not a.terminal for a in allocs):
            return "running" if any(a.client_status == "running" for a in allocs) else "pending"
        return "dead" if record.stop or allocs else "pending"

    def job(self, job_id: str) -> dict[str, Any]:
        record = self._record(job_id)
        return {
            **record.job,
            "Status": self._status(record),
            "StatusDescription": "; ".join(f"group {g}: {why}" for g, why in record.blocked.items()),
            "Stop": record.stop,
            "Version": record.version,
            "CreateIndex": record.create_index,
            "ModifyIndex": record.modify_index,
            "JobModifyIndex": record.job_modify_index,
            "SubmitTime": record.submit_time,
            "Stable": False,
            "AllAtOnce": False,
            "ParentID": "",
            "Dispatched": False,
        }

    def job_versions(self, job_id: str) -> dict[str, Any]:
        """Nomad's ``JobVersionsResponse``: every kept version, newest first."""
        record = self._record(job_id)
        versions = [
            {**j, "Stable": False, "Status": self._status(record) if j["Version"] == record.version else "dead"}
            for j in reversed(record.history)
        ]
        return {"Versions": versions, "Diffs": [], "KnownLeader": True, "LastContact": 0, "LastIndex": self.clock.index}

    def job_summary(self, job_id: str) -> dict[str, Any]:
        record = self._record(job_id)
        summary: dict[str, dict[str, int]] = {}
        keys = {"pending": "Starting", "running": "Running", "complete": "Complete", "failed": "Failed"}
        for group in record.job["TaskGroups"]:
            summary[group["Name"]] = dict.fromkeys(
                ("Queued", "Complete", "Failed", "Running", "Starting", "Lost", "Unknown"), 0
            )
        for alloc in self._job_allocs(job_id):
            if alloc.group["Name"] in summary:
                summary[alloc.group["Name"]][keys[alloc.client_status]] += 1
        for group in record.blocked:
            if group in summary:
                summary[group]["Queued"] = (
                    int(next((g.get("Count", 1) for g in record.job["TaskGroups"] if g["Name"] == group), 1))
                    - summary[group]["Running"]
                    - summary[group]["Starting"]
                )
        return {
            "JobID": job_id,
            "Namespace": record.job["Namespace"],
            "Summary": summary,
            "CreateIndex": record.create_index,
            "ModifyIndex": self.clock.index,
        }

    def job_list(self, prefix: str = "") -> list[dict[str, Any]]:
        out = []
        for job_id in sorted(self.jobs):
            if not job_id.startswith(prefix):
                continue
            record = self.jobs[job_id]
            job = record.job
            out.append(
                {
                    "ID": job_id,
                    "Name": job["Name"],
                    "Namespace": job["Namespace"],
                    "Type": job["Type"],
                    "Priority": job["Priority"],
                    "Datacenters": job["Datacenters"],
                    "Periodic": False,
                    "ParameterizedJob": False,
                    "ParentID": "",
                    "Stop": record.stop,
                    "Status": self._status(record),
                    "StatusDescription": "; ".join(f"group {g}: {why}" for g, why in record.blocked.items()),
                    "JobSummary": self.job_summary(job_id),
                    "CreateIndex": record.create_index,
                    "ModifyIndex": record.modify_index,
                    "JobModifyIndex": record.job_modify_index,
                    "SubmitTime": record.submit_time,
                }
            )
        return out

    def job_allocations(self, job_id: str) -> list[dict[str, Any]]:
        self._record(job_id)
        return [a.stub() for a in self._job_allocs(job_id)]

    def allocation_list(self, prefix: str = "") -> list[dict[str, Any]]:
        allocs = sorted(self.allocs.values(), key=lambda a: -a.create_index)
        return [a.stub() for a in allocs if a.id.startswith(prefix)]

    def allocation(self, alloc_id: str) -> dict[str, Any]:
        alloc = self.allocs.get(alloc_id)
        if alloc is None:
            raise NotFound(f"alloc not found: {alloc_id}")
        return alloc.to_api()

    def task_log(self, alloc_id: str, task: str, kind: str) -> Path:
        """The log file of ``task``'s ``kind`` (stdout/stderr) in allocation ``alloc_id``: NotFound for an unknown
        allocation (or one collected), JobInvalid for a task its group does not have."""
        alloc = self.allocs.get(alloc_id)
        if alloc is None:
            raise NotFound(f'Unknown allocation "{alloc_id}"')
        if task not in [t["Name"] for t in alloc.group.get("Tasks") or []]:
            raise JobInvalid(f'unknown task name "{task}"')
        return alloc.log_path(task, kind)

    def evaluation(self, eval_id: str) -> dict[str, Any]:
        evaluation = self.evals.get(eval_id)
        if evaluation is None:
            raise NotFound(f"eval not found: {eval_id}")
        return evaluation

    def evaluation_list(self, prefix: str = "") -> list[dict[str, Any]]:
        return self.evals.listing(prefix)

    def job_evaluations(self, job_id: str) -> list[dict[str, Any]]:
        self._record(job_id)
        return self.evals.listing(job_id=job_id)

    # -- the node --------------------------------------------------------------------------------------------
    def _node(self, node_id: str) -> EmbeddedNode:
        if node_id != self.node.node_id and node_id != self.node.name:
            raise NotFound(f"node not found: {node_id}")
        return self.node

    def node_info(self, node_id: str) -> dict[str, Any]:
        return self._node(node_id).to_api()

    def node_allocations(self, node_id: str) -> list[dict[str, Any]]:
        """Every allocation on the node, in full (``Allocation``), newest first."""
        self._node(node_id)
        return [a.to_api() for a in sorted(self.allocs.values(), key=lambda a: -a.create_index)]
