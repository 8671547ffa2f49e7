"""Heal: apply one allowlisted action through the cluster client (Nomad's API: job register, revert, alloc stop).

``restart`` stops the failing allocation so the scheduler places a fresh one; ``increase_memory`` /
``increase_cpu`` re-register the job with doubled resources (memory capped by ``max_memory_mb``);
``reschedule`` turns the group's static ports into dynamic ones (the port is taken) or else moves the
allocation; ``rollback`` reverts to the previous version; ``switch_to_fallback_model`` and
``switch_to_portable_binary`` re-register the job with the fallback model or the job's portable command.
``mark_failed_and_alert`` and ``error`` change nothing in the cluster: they escalate. :func:`plan` computes the
new job first, so its risk (a big memory grant) is known before anything is applied.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fleetmind.cluster.client import ClusterClient, ClusterError
from fleetmind.supervisor import HealFailed
from fleetmind.supervisor.actions import RISK, RISK_ORDER, Decision, Risk
from fleetmind.supervisor.diagnose import Diagnosis, find_task, model_index
from fleetmind.supervisor.rules import PORTABLE_META

# What Nomad fills in or owns; a job sent back to register must not carry them.
_READ_ONLY = (
    "Status",
    "StatusDescription",
    "Stop",
    "Version",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "SubmitTime",
    "Stable",
    "Dispatched",
)


@dataclass(frozen=True)
class Plan:
    decision: Decision
    risk: Risk
    job: dict[str, Any] | None  # the job to register, for actions that change it
    detail: str


def _clean(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in copy.deepcopy(job).items() if k not in _READ_ONLY}


def _bump(risk: Risk) -> Risk:
    order = ["low", "medium", "high"]
    return order[min(RISK_ORDER[risk] + 1, 2)]  # type: ignore[return-value]


def plan(
    client: ClusterClient,
    decision: Decision,
    diagnosis: Diagnosis,
    *,
    fallback_model: str | None = None,
    max_memory_mb: int = 4096,
) -> Plan:
    """What ``decision`` would do, and at which risk; raises :class:`HealFailed` when it cannot apply here."""
    action = decision.action
    risk: Risk = RISK[action]
    if decision.decided_by == "llm" and action not in ("restart", "mark_failed_and_alert", "error"):
        risk = _bump(risk)  # an LLM's change to a job weighs more than a rule's
    fault = diagnosis.fault
    if action in ("restart", "rollback", "mark_failed_and_alert", "error"):
        return Plan(decision, risk, None, action)
    job = _clean(client.job(fault.job))
    found = find_task(job, fault.task)
    if found is None:
        raise HealFailed(f"job {fault.job} has no task {fault.task}")
    group, task = found
    resources = task.setdefault("Resources", {})
    if action == "increase_memory":
        old = int(resources.get("MemoryMB") or 300)
        old_max = int(resources.get("MemoryMaxMB") or 0)
        new_max = old_max * 2 if old_max else 0
        resources["MemoryMB"] = old * 2
        if new_max:
            resources["MemoryMaxMB"] = new_max
        if max(old * 2, new_max) > max_memory_mb:
            risk = "high"
        detail = f"memory {old}→{old * 2} MB" + (f", max {old_max}→{new_max} MB" if new_max else "")
        return Plan(decision, risk, job, detail)
    if action == "increase_cpu":
        old = int(resources.get("CPU") or 100)
        resources["CPU"] = old * 2
        return Plan(decision, risk, job, f"cpu {old}→{old * 2} MHz")
    if action == "reschedule":
        moved = []
        for network in group.get("Networks") or []:
            static = network.pop("ReservedPorts", None) or []
            dynamic = [{"Label": p["Label"], "Value": 0} for p in static]
            network["DynamicPorts"] = [*(network.get("DynamicPorts") or []), *dynamic]
            moved += [f"{p['Label']}:{p['Value']}" for p in static]
        if not moved:
            return Plan(decision, risk, None, "move the allocation")
        return Plan(decision, risk, job, f"static ports {', '.join(moved)} become dynamic")
    config = task.setdefault("Config", {})
    if action == "switch_to_fallback_model":
        args = [str(a) for a in config.get("args") or []]
        if not fallback_model:
            raise HealFailed("no fallback model is known for this job")
        index = model_index(args)
        if index is None:
            raise HealFailed("the task's command names no -m/--model to replace")
        args[index] = fallback_model
        config["args"] = args
        return Plan(decision, risk, job, f"model → {fallback_model}")
    if action == "switch_to_portable_binary":
        portable = (job.get("Meta") or {}).get(PORTABLE_META)
        if not portable:
            raise HealFailed(f"job {fault.job} names no portable binary (meta {PORTABLE_META})")
        config["command"] = str(portable)
        return Plan(decision, risk, job, f"command → {portable}")
    raise HealFailed(f"no way to apply {action!r}")


def apply(client: ClusterClient, p: Plan, diagnosis: Diagnosis) -> str:
    """Apply a plan; returns what was done. Raises :class:`HealFailed`."""
    fault = diagnosis.fault
    action = p.decision.action
    try:
        if p.job is not None:
            client.register_job(p.job)
        elif action in ("restart", "reschedule"):
            client.stop_allocation(fault.alloc)
        elif action == "rollback":
            current = int(diagnosis.data["versions"]["current"])
            older = [v for v in diagnosis.data["versions"]["history"] if v < current]
            if not older:
                raise HealFailed(f"job {fault.job} has no version older than {current}")
            client.revert_job(fault.job, max(older), enforce_prior_version=current)
            return f"reverted to version {max(older)}"
    except ClusterError as exc:
        raise HealFailed(f"{action} on {fault.job}: {exc}") from exc
    return p.detail
