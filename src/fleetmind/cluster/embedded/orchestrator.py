"""The embedded orchestrator: Nomad's job → allocation lifecycle on this one node, nothing distributed.

Registering a job records it and runs an evaluation in the background (as Nomad does): allocations of an
older version are stopped, missing ones are placed with their ports (static ones reserved, dynamic ones
picked free), and each runs as an :class:`AllocRunner`. A group is placed only while the node is eligible and
every constraint of the job, the group and its tasks holds on the node (:mod:`fleetmind.cluster.constraints`
against :class:`.node.EmbeddedNode`); otherwise it stays queued and the evaluation (``FailedTGAllocs``,
``StatusDescription``) and the job's ``StatusDescription`` say why, e.g. ``constraint not met:
${meta.fleetmind_class} regexp ^avx512$ ...``. A ``distinct_hosts`` job or group gets one allocation on the one
node, the rest stay queued and say so. Making the node eligible again re-evaluates every job.
Deregistering stops every allocation; ``purge`` also forgets the job. Garbage collection (:mod:`.gc`) deletes the
files of dead allocations and forgets them. Reads (:mod:`.views`) return Nomad's API
shapes (``Job``, ``JobListStub``, ``AllocationListStub``, ``Allocation``, ``Evaluation``, ``Node``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleetmind.cluster.constraints import DISTINCT_HOSTS, EVALUATED, check_regexp, describe
from fleetmind.cluster.embedded.allocation import DRIVERS, AllocRunner, Placement
from fleetmind.cluster.embedded.evals import Evaluations
from fleetmind.cluster.embedded.gc import OrchestratorGC
from fleetmind.cluster.embedded.index import IndexClock
from fleetmind.cluster.embedded.node import ELIGIBLE, INELIGIBLE, EmbeddedNode
from fleetmind.cluster.embedded.registry import Registry
from fleetmind.cluster.embedded.views import JobInvalid, JobRecord, NotFound, OrchestratorViews
from fleetmind.cluster.garbage import ALLOCS

log = logging.getLogger(__name__)


def _free_port(address: str, taken: set[int]) -> int:
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((address, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port
    raise JobInvalid("could not find a free dynamic port")


def _spec(job: dict[str, Any]) -> dict[str, Any]:
    """The parts of a job that, when changed, call for new allocations."""
    return {k: v for k, v in job.items() if k in ("TaskGroups", "Type", "Meta", "Constraints")}


def _constraints(job: Mapping[str, Any], group: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every constraint that applies to a group: the job's, the group's and its tasks' (as Nomad combines them)."""
    found = [*(job.get("Constraints") or []), *(group.get("Constraints") or [])]
    for task in group.get("Tasks") or []:
        found += task.get("Constraints") or []
    return [c for c in found if isinstance(c, dict)]


class Orchestrator(OrchestratorViews, OrchestratorGC):
    """Jobs and allocations of the embedded single-node cluster."""

    def __init__(
        self,
        *,
        logs_dir: Path,
        registry: Registry,
        data_dir: Path | None = None,
        address: str = "127.0.0.1",
        datacenter: str = "dc1",
        region: str = "global",
        node_meta: Mapping[str, str] | None = None,
    ) -> None:
        """``node_meta`` overrides entries of the node's meta (by default this machine's placement facts)."""
        self.logs_dir = Path(logs_dir)
        self.data_dir = Path(data_dir) if data_dir else self.logs_dir / ALLOCS
        self.registry = registry
        self.clock = IndexClock()
        self.jobs: dict[str, JobRecord] = {}
        self.allocs: dict[str, AllocRunner] = {}
        self.node_name = registry.node_name
        self.node_id = registry.node_id
        self.address, self.datacenter, self.region = address, datacenter, region
        self.node = EmbeddedNode.this_machine(
            node_id=self.node_id,
            name=self.node_name,
            address=address,
            datacenter=datacenter,
            region=region,
            meta=node_meta,
        )
        self.evals = Evaluations()
        self._lock = asyncio.Lock()
        self._evals: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- writes -------------------------------------------------------------------------------------------
    def validate(self, job: Any) -> dict[str, Any]:
        if not isinstance(job, dict):
            raise JobInvalid("the request needs a Job object")
        if not job.get("ID") or not isinstance(job["ID"], str) or " " in job["ID"]:
            raise JobInvalid("job ID is missing or contains a space")
        if job.get("Type", "service") not in ("service", "batch"):
            raise JobInvalid(f"job type {job.get('Type')!r} is not supported by the embedded orchestrator")
        groups = job.get("TaskGroups") or []
        if not groups:
            raise JobInvalid("job has no task groups")
        for group in groups:
            if not group.get("Name") or not group.get("Tasks"):
                raise JobInvalid("every task group needs a Name and at least one task")
            for task in group["Tasks"]:
                if task.get("Driver") not in DRIVERS:
                    raise JobInvalid(
                        f"task {task.get('Name')!r}: driver {task.get('Driver')!r} is not supported "
                        f"by the embedded orchestrator (use {', '.join(DRIVERS)})"
                    )
                if not isinstance((task.get("Config") or {}).get("command"), str):
                    raise JobInvalid(f"task {task.get('Name')!r}: config.command is required")
            for task in group["Tasks"]:
                for constraint in task.get("Constraints") or []:
                    if constraint.get("Operand") in (DISTINCT_HOSTS, "distinct_property"):
                        raise JobInvalid(
                            f"task {task.get('Name')!r}: constraint operator {constraint['Operand']!r} is not "
                            "allowed at task level (Nomad takes it on a job or a group)"
                        )
            for constraint in _constraints(job, group):
                operand = str(constraint.get("Operand") or "=")
                if operand not in EVALUATED | {DISTINCT_HOSTS}:
                    raise JobInvalid(
                        f"constraint {describe(constraint)}: operator {operand!r} is not supported by the embedded "
                        f"orchestrator (one node; use {', '.join(sorted(EVALUATED))})"
                    )
                if problem := check_regexp(constraint):
                    raise JobInvalid(problem)
        job = dict(job)
        job.setdefault("Name", job["ID"])
        job.setdefault("Type", "service")
        job.setdefault("Namespace", "default")
        job.setdefault("Region", self.region)
        job.setdefault("Datacenters", ["*"])
        job.setdefault("Priority", 50)
        return job

    def register(self, job: dict[str, Any]) -> dict[str, Any]:
        """Record the job and start an evaluation; returns Nomad's ``JobRegisterResponse``."""
        if self._closed:
            raise JobInvalid("the orchestrator is shutting down")
        job = self.validate(job)
        self._check_static_ports(job)
        record = self.jobs.get(job["ID"])
        index = self.clock.bump()
        if record is None:
            record = JobRecord(job, index, index, index, time.time_ns())
            self.jobs[job["ID"]] = record
        elif record.stop or _spec(record.job) != _spec(job):
            record.version += 1
            record.job_modify_index = index
        record.job, record.stop, record.modify_index = job, False, index
        record.job["Version"] = record.version
        record.submit_time = time.time_ns()
        if not record.history or record.history[-1]["Version"] != record.version:
            record.history.append({**job, "SubmitTime": record.submit_time})
        else:
            record.history[-1] = {**job, "SubmitTime": record.submit_time}
        return self._evaluate(job["ID"], index)

    def revert(self, job_id: str, version: int, enforce_prior: int | None = None) -> dict[str, Any]:
        """Register version ``version`` of the job again (as a new version, as Nomad does)."""
        record = self._record(job_id)
        if enforce_prior is not None and enforce_prior != record.version:
            raise JobInvalid(f"current job has version {record.version}; enforcing version {enforce_prior}")
        if version == record.version:
            raise JobInvalid(f"can't revert to current version {version}")
        old = next((j for j in record.history if j["Version"] == version), None)
        if old is None:
            raise NotFound(f"job {job_id} has no version {version}")
        job = {k: v for k, v in old.items() if k not in ("Version", "SubmitTime")}
        return self.register(job)

    def stop_allocation(self, alloc_id: str) -> dict[str, Any]:
        """Stop one allocation; the job's next evaluation places a replacement (Nomad's ``alloc stop``)."""
        alloc = self.allocs.get(alloc_id)
        if alloc is None:
            raise NotFound(f"alloc not found: {alloc_id}")
        index = self.clock.bump()
        job_id = alloc.job["ID"]
        eval_id = self._new_eval(job_id, index, "alloc-stop")

        async def stop_then_replace() -> None:
            await alloc.stop("alloc was stopped through the API")
            await self._reconcile(job_id, eval_id)

        task = asyncio.get_running_loop().create_task(stop_then_replace(), name=f"stop {alloc_id}")
        self._evals.add(task)
        task.add_done_callback(self._evals.discard)
        return {"EvalID": eval_id, "Index": index}

    def deregister(self, job_id: str, *, purge: bool = False) -> dict[str, Any]:
        """Stop the job's allocations (in the background); with ``purge`` forget the job too."""
        record = self.jobs.get(job_id)
        if record is None:
            raise NotFound(f"job not found: {job_id}")
        index = self.clock.bump()
        record.stop, record.modify_index, record.job_modify_index = True, index, index
        if purge:
            del self.jobs[job_id]
        return self._evaluate(job_id, index)

    def _new_eval(self, job_id: str, index: int, triggered_by: str) -> str:
        record = self.jobs.get(job_id)
        job = record.job if record else {}
        return self.evals.open(job, job_id, index, record.job_modify_index if record else index, triggered_by)

    def _finish_eval(
        self, eval_id: str, failed: Mapping[str, tuple[dict[str, Any], str]], queued: dict[str, int]
    ) -> None:
        self.evals.finish(eval_id, self.clock.bump(), failed, queued)

    def _evaluate(self, job_id: str, index: int, triggered_by: str = "job-register") -> dict[str, Any]:
        eval_id = self._new_eval(job_id, index, triggered_by)
        task = asyncio.get_running_loop().create_task(self._reconcile(job_id, eval_id), name=f"eval {eval_id}")
        self._evals.add(task)
        task.add_done_callback(self._evals.discard)
        return {
            "EvalID": eval_id,
            "EvalCreateIndex": index,
            "JobModifyIndex": index,
            "Warnings": "",
            "Index": index,
            "LastIndex": index,
            "KnownLeader": True,
            "LastContact": 0,
        }

    async def _reconcile(self, job_id: str, eval_id: str) -> None:
        async with self._lock:
            record = self.jobs.get(job_id)
            live = [a for a in self.allocs.values() if a.job["ID"] == job_id and a.desired_status == "run"]
            if record is None or record.stop or self._closed:
                await asyncio.gather(*(a.stop("alloc not needed since job was stopped") for a in live))
                if record is None:  # purged: forget its allocations too
                    for alloc in [a for a in self.allocs.values() if a.job["ID"] == job_id]:
                        del self.allocs[alloc.id]
                    self.clock.bump()
                else:
                    record.blocked = {}
                self._finish_eval(eval_id, {}, {})
                return
            current = [a for a in live if a.job.get("Version") == record.version and not a.terminal]
            outdated = [a for a in live if a not in current]
            await asyncio.gather(*(a.stop("alloc is being updated due to job update") for a in outdated))
            failed: dict[str, tuple[dict[str, Any], str]] = {}
            queued: dict[str, int] = {}
            record.blocked = {}
            here = [(job_id, a.group["Name"]) for a in current]  # what distinct_hosts counts (Nomad's proposed)
            for group in record.job["TaskGroups"]:
                have = {a.index for a in current if a.group["Name"] == group["Name"]}
                missing = [i for i in range(int(group.get("Count", 1))) if i not in have]
                queued[group["Name"]] = 0
                if not missing:
                    continue
                refusal, room = self.node.refusal(_constraints(record.job, group), len(missing)), 0
                if refusal is None:  # the node fits: distinct_hosts may still allow fewer than asked
                    room, refusal = self.node.distinct_room(record.job, group, here, len(missing))
                if refusal is not None:
                    failed[group["Name"]] = refusal
                    queued[group["Name"]] = len(missing) - room
                    record.blocked[group["Name"]] = refusal[1]
                    log.warning("not placing %s.%s: %s", job_id, group["Name"], refusal[1])
                for index in missing[:room]:
                    self._place(record, group, index, eval_id)
                    here.append((job_id, group["Name"]))
            self._finish_eval(eval_id, failed, queued)

    def _check_static_ports(self, job: dict[str, Any]) -> None:
        taken = {
            port["Value"]: alloc.name
            for alloc in self.allocs.values()
            if alloc.job["ID"] != job["ID"] and alloc.desired_status == "run"
            for network in alloc.group.get("Networks") or []
            for port in network.get("ReservedPorts") or []
        }
        for group in job["TaskGroups"]:
            for network in group.get("Networks") or []:
                for port in network.get("ReservedPorts") or []:
                    if port.get("Value") in taken:
                        raise JobInvalid(
                            f"static port {port['Value']} ({port.get('Label')}) is already reserved "
                            f"by allocation {taken[port['Value']]}"
                        )

    def _place(self, record: JobRecord, group: dict[str, Any], index: int, eval_id: str) -> AllocRunner:
        taken = {p for a in self.allocs.values() if a.desired_status == "run" for p in a.placement.ports.values()}
        ports: dict[str, int] = {}
        for network in group.get("Networks") or []:
            for port in network.get("ReservedPorts") or []:
                ports[port["Label"]] = int(port["Value"])
            for port in network.get("DynamicPorts") or []:
                ports[port["Label"]] = _free_port(self.address, taken | set(ports.values()))
        placement = Placement(
            self.node_id,
            self.node_name,
            self.address,
            self.datacenter,
            self.region,
            self.logs_dir,
            self.data_dir,
            ports,
            self.node.variables,
        )
        alloc = AllocRunner(
            alloc_id=str(uuid.uuid4()),
            eval_id=eval_id,
            job=record.job,
            group=group,
            index=index,
            placement=placement,
            registry=self.registry,
            clock=self.clock,
        )
        self.allocs[alloc.id] = alloc
        record.allocs.append(alloc.id)
        log.info("placing %s (ports %s)", alloc.name, ports)
        alloc.start()
        return alloc

    async def shutdown(self) -> None:
        """Stop every allocation and wait until every task process is gone."""
        self._closed = True
        for task in list(self._evals):
            task.cancel()
        await asyncio.gather(*self._evals, return_exceptions=True)
        await asyncio.gather(*(a.stop("embedded cluster is shutting down") for a in self.allocs.values()))

    # -- reads --------------------------------------------------------------------------------------------
    # -- the node: eligibility and drain ------------------------------------------------------------------
    def _node_changed(self, eligible_before: bool) -> dict[str, Any]:
        index = self.clock.bump()
        self.node.modify_index = index
        eval_ids: list[str] = []
        if self.node.eligible and not eligible_before:
            # Nomad re-runs the blocked evaluations when a node can take work again
            for job_id, record in list(self.jobs.items()):
                if not record.stop:
                    eval_ids.append(self._evaluate(job_id, index, "node-update")["EvalID"])
        return {
            "EvalIDs": eval_ids,
            "EvalCreateIndex": index if eval_ids else 0,
            "NodeModifyIndex": index,
            "LastIndex": index,
            "Index": index,
            "RequestTime": time.time_ns(),
        }

    def set_eligibility(self, node_id: str, eligibility: str) -> dict[str, Any]:
        """Mark the node eligible or ineligible for new placements (Nomad's ``/v1/node/:id/eligibility``)."""
        node = self._node(node_id)
        if eligibility not in (ELIGIBLE, INELIGIBLE):
            raise JobInvalid(f'invalid scheduling eligibility {eligibility!r} ("eligible" or "ineligible")')
        if node.drain_strategy is not None and eligibility == ELIGIBLE:
            raise JobInvalid("can not set node's scheduling eligibility to eligible while it is draining")
        before = node.eligible
        node.eligibility = eligibility
        log.info("node %s is now %s", node.name, eligibility)
        return self._node_changed(before)

    def drain(
        self,
        node_id: str,
        spec: Mapping[str, Any] | None,
        *,
        mark_eligible: bool = False,
        meta: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Start (``spec``) or cancel (None) a drain (Nomad's ``/v1/node/:id/drain``).

        Draining makes the node ineligible. There is no other node to move allocations to, and this node is
        the control node, so they keep running and the drain completes at once; cancelling with
        ``mark_eligible`` makes the node eligible again (and re-evaluates every job)."""
        node = self._node(node_id)
        before = node.eligible
        if spec is not None:
            node.eligibility = INELIGIBLE
            node.drain_strategy = None  # completed at once: nothing can move
            node.last_drain = node.drain_metadata("complete", meta)
            log.info("node %s drained: no new placements (its allocations keep running)", node.name)
        else:
            if node.last_drain is not None and node.last_drain.get("Status") == "draining":
                node.last_drain = node.drain_metadata("canceled", meta)
            node.drain_strategy = None
            if mark_eligible:
                node.eligibility = ELIGIBLE
            log.info("node %s drain cancelled; now %s", node.name, node.eligibility)
        return self._node_changed(before)
