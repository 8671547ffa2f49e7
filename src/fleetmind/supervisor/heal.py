"""Heal: apply one allowlisted action through the cluster client (Nomad's API: job register, revert, alloc stop).

``restart`` stops the failing allocation so the scheduler places a fresh one; ``increase_memory`` /
``increase_cpu`` re-register the job with doubled resources (memory capped by ``max_memory_mb``);
``reschedule`` turns the group's static ports into dynamic ones (the port is taken) or else moves the
allocation; ``rollback`` reverts to the previous version; ``switch_to_fallback_model`` and
``switch_to_portable_binary`` re-register the job with the fallback model or the job's portable command.
``reclaim_disk`` asks the cluster for a garbage collection (Nomad's ``PUT /v1/system/gc``) and then restarts the
allocation; the bytes it freed in the state dir are audited. ``set_aside_cpu_variant`` proves the job's llama.cpp
build again without timing it (:func:`fleetmind.llm.cpu_fit.prove` with ``measure=False`` and the light model: the
variant that dies by SIGILL is moved to ``<bin>/variants-set-aside/``; what the install set aside as slower stays
aside and nothing is re-timed, so noise never changes the variant), then restarts the allocation, which loads the
next variant. Proofs of one build folder take turns (its lock file): a second expert of the same build that dies
meanwhile waits, then finds the variant already aside.
``mark_failed_and_alert`` and ``error`` change nothing in the cluster: they escalate. :func:`plan` computes the
new job first, so its risk (a big memory grant) is known before anything is applied.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetmind.cluster.client import ClusterClient, ClusterError
from fleetmind.llm import LlmError, cpu_fit
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
    proof_model: str | None = None  # set_aside_cpu_variant: the model the build is proven with


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
    if action == "reclaim_disk":
        return Plan(decision, risk, None, "collect the cluster's garbage, then restart the allocation")
    if action == "set_aside_cpu_variant":
        llama = diagnosis.data.get("llama_cpp") or {}
        model = diagnosis.data.get("model") or {}
        proof_model = fallback_model or (model.get("path") if model.get("exists") else None)
        if not llama.get("bin_dir") or not proof_model:
            raise HealFailed("no llama.cpp build folder, or no model file to prove it with")
        return Plan(decision, risk, None, f"prove {llama['bin_dir']} with {proof_model}, then restart", proof_model)
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


def _free(disk: Path | None) -> int:
    return shutil.disk_usage(disk).free if disk is not None else 0


def apply(
    client: ClusterClient, p: Plan, diagnosis: Diagnosis, *, disk_dir: Path | None = None
) -> tuple[str, dict[str, Any]]:
    """Apply a plan; returns what was done and the facts to audit (``freed_bytes`` in ``disk_dir`` for
    ``reclaim_disk``; the proof's variant and what it set aside for ``set_aside_cpu_variant``). Raises
    :class:`HealFailed`."""
    fault = diagnosis.fault
    action = p.decision.action
    try:
        if action == "reclaim_disk":
            before = _free(disk_dir)
            client.collect_garbage()
            freed = max(0, _free(disk_dir) - before)
            client.stop_allocation(fault.alloc)
            return f"garbage collected: {freed / 2**20:.1f} MB freed; allocation restarted", {"freed_bytes": freed}
        if action == "set_aside_cpu_variant":
            bin_dir = Path(diagnosis.data["llama_cpp"]["bin_dir"])
            try:
                proven = cpu_fit.prove(Path(str(p.proof_model)), bin_dir=bin_dir, measure=False)
            except (LlmError, OSError) as exc:
                raise HealFailed(f"the proof of {bin_dir} failed: {str(exc)[:300]}") from exc
            client.stop_allocation(fault.alloc)
            aside = ", ".join(f"{v} ({why})" for v, why in proven.set_aside.items()) or "nothing"
            facts = {"variant": proven.variant, "set_aside": proven.set_aside}
            return f"proved {bin_dir}: set aside {aside}; ggml loads {proven.variant}; restarted", facts
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
            return f"reverted to version {max(older)}", {}
    except ClusterError as exc:
        raise HealFailed(f"{action} on {fault.job}: {exc}") from exc
    return p.detail, {}
