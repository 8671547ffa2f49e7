"""Decide, rules first: the well-understood failures get a deterministic action; only the rest go to the LLM.

In order: a full state dir → collect the cluster's garbage when that frees enough, else escalate (the disk holds
what the stack does not own), OOM → more memory, SIGILL → the job's portable binary, or for a llama.cpp build with
runtime CPU dispatch the proof that sets the crashing variant aside (else escalate), a missing model → the
fallback model, a port already taken → another port, a crash loop right after a job update → the previous version,
a hung task (running, its check failing) → restart. The first rule that matches decides.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fleetmind.supervisor.actions import Decision
from fleetmind.supervisor.diagnose import DISK_FULL, Diagnosis, low_water_mb

PORTABLE_META = "fleetmind_portable_command"
FALLBACK_META = "fleetmind_fallback_model"
PORT_TAKEN = ("address already in use", "couldn't bind", "could not bind", "eaddrinuse")
RECENT_UPDATE_S = 900.0

Rule = Callable[[Diagnosis, "RuleContext"], Decision | None]


class RuleContext:
    """What the rules know besides the diagnosis: the stack's own fallback model."""

    def __init__(self, *, fallback_model: Path | None = None) -> None:
        self.fallback_model = fallback_model


def _rule(name: str, action: str, reason: str) -> Decision:
    return Decision(action, reason, "rule", rule=name)


def disk_full(d: Diagnosis, _ctx: RuleContext) -> Decision | None:
    """Reclaim when collecting the dead allocations' files brings the free space back above the low water mark
    (and frees at least a quarter of it); otherwise something the stack does not own fills the disk: escalate."""
    disk = d.data.get("state_dir") or {}
    free, low = disk.get("free_mb"), low_water_mb(disk.get("total_mb"))
    if not (any(s in d.text() for s in DISK_FULL) or (isinstance(free, int) and free < low)):
        return None
    found = d.data.get("garbage") or {}
    mb = int(found.get("bytes") or 0) / 2**20
    if isinstance(free, int) and mb >= max(low - free, low / 4):
        why = f"the state dir is full ({free} MB free); the files of dead allocations ({found.get('allocations')}) "
        why += f"hold {mb:.1f} MB: collect them"
        return _rule("disk_full", "reclaim_disk", why)
    why = f"the state dir is full ({free} MB free) and garbage collection would free {mb:.1f} MB: free disk space"
    return _rule("disk_full", "mark_failed_and_alert", why)


def oom(d: Diagnosis, _ctx: RuleContext) -> Decision | None:
    if d.fault.kind == "oom":
        return _rule("oom", "increase_memory", "killed by the OOM killer over its memory limit")
    return None


def sigill(d: Diagnosis, _ctx: RuleContext) -> Decision | None:
    if d.fault.kind != "sigill":
        return None
    if d.data.get("meta", {}).get(PORTABLE_META):
        return _rule("sigill", "switch_to_portable_binary", "SIGILL: this CPU cannot run the build")
    llama = d.data.get("llama_cpp") or {}
    if len(llama.get("variants") or []) > 1:  # runtime CPU dispatch: another variant can run here
        why = f"SIGILL in the llama.cpp build at {llama['bin_dir']}: prove it again, setting the crashing variant aside"
        return _rule("sigill", "set_aside_cpu_variant", why)
    return _rule("sigill", "mark_failed_and_alert", "SIGILL and the job names no portable binary: rebuild for this CPU")


def fallback_for(d: Diagnosis, ctx: RuleContext) -> str | None:
    named = d.data.get("meta", {}).get(FALLBACK_META)
    candidate = named or (str(ctx.fallback_model) if ctx.fallback_model else None)
    return candidate if candidate and Path(candidate).is_file() else None


def missing_model(d: Diagnosis, ctx: RuleContext) -> Decision | None:
    model = d.data.get("model")
    if not model or model.get("exists"):
        return None
    if fallback_for(d, ctx) and d.data["model"]["path"] != fallback_for(d, ctx):
        return _rule("missing_model", "switch_to_fallback_model", f"model file {model['path']} is missing")
    return _rule("missing_model", "mark_failed_and_alert", f"model file {model['path']} is missing, no fallback")


def port_taken(d: Diagnosis, _ctx: RuleContext) -> Decision | None:
    if any(s in d.text() for s in PORT_TAKEN):
        return _rule("port_taken", "reschedule", "its port is already taken: place it on another port")
    return None


def bad_update(d: Diagnosis, _ctx: RuleContext) -> Decision | None:
    versions = d.data.get("versions") or {}
    current = int(versions.get("current") or 0)
    if (
        d.fault.kind == "crash_loop"
        and current > 0
        and d.fault.job_version == current
        and len(versions.get("history") or []) > 1
        and float(versions.get("last_update_age_s") or 1e9) < RECENT_UPDATE_S
    ):
        return _rule("bad_update", "rollback", f"crash loop right after the update to version {current}")
    return None


def hung(d: Diagnosis, _ctx: RuleContext) -> Decision | None:
    if d.fault.kind == "unhealthy":
        return _rule("hung", "restart", "running but not answering its health check")
    return None


RULES: tuple[Rule, ...] = (disk_full, oom, sigill, missing_model, port_taken, bad_update, hung)


def decide_by_rules(d: Diagnosis, ctx: RuleContext, rules: tuple[Rule, ...] = RULES) -> Decision | None:
    for rule in rules:
        decision = rule(d, ctx)
        if decision is not None:
            return decision
    return None
