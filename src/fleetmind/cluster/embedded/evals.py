"""The embedded orchestrator's evaluations, in Nomad's ``Evaluation`` shape: what each scheduling pass decided.

Each register, deregister, alloc stop or node update opens one (``pending``); the reconcile pass completes it,
with ``QueuedAllocations`` and, for a group it could not place, ``FailedTGAllocs`` (Nomad's ``AllocationMetric``:
``ConstraintFiltered`` names the constraint) and a ``StatusDescription`` that says why in words. The newest
:data:`MAX_EVALS` are kept, as Nomad garbage-collects old ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

MAX_EVALS = 1000


class Evaluations:
    """Evaluations by ID, oldest first."""

    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}

    def open(self, job: Mapping[str, Any], job_id: str, index: int, job_modify_index: int, triggered_by: str) -> str:
        """Record a pending evaluation and return its ID."""
        now = time.time_ns()
        evaluation = {
            "ID": str(uuid.uuid4()),
            "Namespace": job.get("Namespace", "default"),
            "Priority": job.get("Priority", 50),
            "Type": job.get("Type", "service"),
            "TriggeredBy": triggered_by,
            "JobID": job_id,
            "JobModifyIndex": job_modify_index,
            "Status": "pending",
            "StatusDescription": "",
            "CreateIndex": index,
            "ModifyIndex": index,
            "CreateTime": now,
            "ModifyTime": now,
        }
        self.by_id[evaluation["ID"]] = evaluation
        while len(self.by_id) > MAX_EVALS:
            del self.by_id[next(iter(self.by_id))]
        return str(evaluation["ID"])

    def finish(
        self, eval_id: str, index: int, failed: Mapping[str, tuple[dict[str, Any], str]], queued: dict[str, int]
    ) -> None:
        """Complete an evaluation; ``failed`` maps each unplaced group to its metric and the reason."""
        evaluation = self.by_id.get(eval_id)
        if evaluation is None:
            return
        evaluation["Status"] = "complete"
        evaluation["QueuedAllocations"] = queued
        if failed:
            evaluation["FailedTGAllocs"] = {group: metric for group, (metric, _why) in failed.items()}
            evaluation["StatusDescription"] = "; ".join(f"group {g}: {why}" for g, (_m, why) in failed.items())
        evaluation["ModifyIndex"] = index
        evaluation["ModifyTime"] = time.time_ns()

    def get(self, eval_id: str) -> dict[str, Any] | None:
        found = self.by_id.get(eval_id)
        return dict(found) if found is not None else None

    def listing(self, prefix: str = "", job_id: str | None = None) -> list[dict[str, Any]]:
        """Evaluations, newest first (of one job with ``job_id``)."""
        return [
            dict(e)
            for e in reversed(self.by_id.values())
            if str(e["ID"]).startswith(prefix) and (job_id is None or e["JobID"] == job_id)
        ]
