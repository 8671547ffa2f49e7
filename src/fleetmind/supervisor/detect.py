"""Detect: which allocations are failing, read only through the cluster client (Nomad and Consul API shapes).

A :class:`Fault` is one failing allocation with its kind: ``oom`` (a ``Terminated`` event the OOM killer caused:
``Details["oom_killed"]``, "OOM Killed"), ``sigill`` (signal 4: no restart helps), ``crash_loop`` (two or more
abnormal ends, or the task failed after its restart budget), or ``unhealthy`` (the task runs but its service
check stays critical past a grace: a hung process). The fault's ``signature`` names it exactly once (job,
allocation, kind), which is what lets the guard diagnose the same failure only once.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetmind.cluster.causes import task_cause
from fleetmind.cluster.client import ClusterClient

FaultKind = Literal["oom", "sigill", "crash_loop", "unhealthy"]


@dataclass(frozen=True)
class Fault:
    job: str
    alloc: str
    task: str
    kind: FaultKind
    summary: str
    job_version: int
    detected_at: float = field(default_factory=time.time)

    @property
    def signature(self) -> str:
        return f"{self.job}/{self.alloc}/{self.kind}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": self.summary[:500],
            "alloc": self.alloc,
            "task": self.task,
            "job_version": self.job_version,
            "signature": self.signature,
        }


def _abnormal(event: dict[str, Any]) -> bool:
    return event.get("Type") == "Terminated" and bool(int(event.get("ExitCode") or 0) or int(event.get("Signal") or 0))


def task_fault(job: str, alloc: dict[str, Any], task: str, state: dict[str, Any]) -> Fault | None:
    """The fault one task's state shows, if any (OOM and SIGILL at once; other crashes once they repeat)."""
    events = [e for e in state.get("Events") or [] if isinstance(e, dict)]
    crashes = [e for e in events if _abnormal(e)]
    version = int(alloc.get("JobVersion") or (alloc.get("Job") or {}).get("Version") or 0)
    cause = task_cause(state)
    text = cause.text if cause else ""
    if crashes:
        last = crashes[-1]
        details = last.get("Details") or {}
        if str(details.get("oom_killed")) == "true" or "OOM Killed" in str(last.get("DisplayMessage") or ""):
            return Fault(job, alloc["ID"], task, "oom", text, version)
        if int(last.get("Signal") or 0) == signal.SIGILL:
            return Fault(job, alloc["ID"], task, "sigill", text, version)
    failed = bool(state.get("Failed")) and state.get("State") == "dead"
    if len(crashes) >= 2 or (failed and crashes):
        return Fault(job, alloc["ID"], task, "crash_loop", text or "crashed repeatedly", version)
    return None


class Detector:
    """Reads the cluster each tick; remembers when a check first went critical (the hung-task grace)."""

    def __init__(
        self,
        client: ClusterClient,
        *,
        unhealthy_after_s: float = 5.0,
        startup_grace_s: float = 90.0,
        ignore_jobs: tuple[str, ...] = (),
    ) -> None:
        """A check that passed once and is critical for ``unhealthy_after_s`` is a fault; one that never passed
        (a server still loading its model) only after ``startup_grace_s``."""
        if unhealthy_after_s < 0 or startup_grace_s < 0:
            raise ValueError("unhealthy_after_s and startup_grace_s must not be negative")
        self.client = client
        self.unhealthy_after_s = unhealthy_after_s
        self.startup_grace_s = startup_grace_s
        self.ignore_jobs = set(ignore_jobs)
        self._critical_since: dict[str, float] = {}
        self._passed: set[str] = set()

    def scan(self) -> list[Fault]:
        faults: list[Fault] = []
        for stub in self.client.jobs():
            if stub.get("Stop") or stub["ID"] in self.ignore_jobs or stub.get("Type") == "batch":
                continue
            faults.extend(self.job_faults(stub["ID"]))
        return faults

    def job_faults(self, job_id: str) -> list[Fault]:
        allocs = [a for a in self.client.job_allocations(job_id) if a.get("DesiredStatus") == "run"]
        faults: list[Fault] = []
        running: list[dict[str, Any]] = []
        for alloc in allocs:
            for task, state in sorted((alloc.get("TaskStates") or {}).items()):
                fault = task_fault(job_id, alloc, task, state)
                if fault is not None:
                    faults.append(fault)
                    break
            else:
                if alloc.get("ClientStatus") == "running":
                    running.append(alloc)
        if running:
            faults.extend(self._unhealthy(job_id, running))
        return faults

    def _unhealthy(self, job_id: str, allocs: list[dict[str, Any]]) -> list[Fault]:
        job = self.client.job(job_id)
        names = {s["Name"] for g in job.get("TaskGroups") or [] for s in g.get("Services") or [] if s.get("Checks")}
        names |= {
            s["Name"]
            for g in job.get("TaskGroups") or []
            for t in g.get("Tasks") or []
            for s in t.get("Services") or []
            if s.get("Checks")
        }
        checks = [c for name in sorted(names) for c in self.client.service_checks(name)]
        now = time.monotonic()
        faults = []
        for alloc in allocs:
            mine = [c for c in checks if alloc["ID"] in c["ServiceID"]]
            critical = [c for c in mine if c["Status"] == "critical"]
            key = alloc["ID"]
            if not critical:
                self._critical_since.pop(key, None)
                if mine:
                    self._passed.add(key)
                continue
            since = self._critical_since.setdefault(key, now)
            grace = self.unhealthy_after_s if key in self._passed else self.startup_grace_s
            if now - since >= grace:
                task = next(iter(sorted(alloc.get("TaskStates") or {"": None})))
                output = critical[0]["Output"] or "check critical"
                text = f"running but its health check has failed for {now - since:.0f}s: {output}"
                faults.append(Fault(job_id, key, task, "unhealthy", text, int(alloc.get("JobVersion") or 0)))
        return faults
