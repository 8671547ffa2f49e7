"""The allowlist: every action the supervisor may take, its risk, and the JSON schema the LLM must answer with.

The LLM's schema (:func:`decision_schema`) offers only :data:`LLM_ACTIONS`; a rule may also choose
``switch_to_portable_binary``, ``set_aside_cpu_variant`` (a llama.cpp build's CPU variant died by SIGILL: prove the
build again, which sets it aside, then restart) and ``reclaim_disk`` (the state dir is full of the cluster's own
garbage: collect it, then restart). Those need facts only a rule reads (the job's portable binary, the build's
variants, the bytes a collection would free), and a failure that calls for them never reaches the LLM.
:func:`parse_decision` is the one gate every decision passes, the LLM's above all: whatever is not on the allowlist
is refused (:class:`~fleetmind.supervisor.ActionRefused`), never applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetmind.supervisor import ActionRefused

Risk = Literal["low", "medium", "high"]
DecidedBy = Literal["rule", "llm", "guard"]

# action -> risk. "error" means: reflection could not classify the failure (goes to adaptation).
RISK: dict[str, Risk] = {
    "restart": "low",
    "increase_memory": "low",
    "increase_cpu": "low",
    "reschedule": "medium",
    "switch_to_fallback_model": "medium",
    "switch_to_portable_binary": "medium",
    "set_aside_cpu_variant": "medium",  # moves a variant of the shared build aside; every proof starts from all
    "reclaim_disk": "low",  # deletes only the files of dead allocations (cluster.garbage), then restarts
    "rollback": "medium",
    "mark_failed_and_alert": "low",
    "error": "low",
}
LLM_ACTIONS: tuple[str, ...] = (
    "restart",
    "increase_memory",
    "increase_cpu",
    "reschedule",
    "rollback",
    "switch_to_fallback_model",
    "mark_failed_and_alert",
    "error",
)
ESCALATIONS = frozenset({"mark_failed_and_alert", "error"})
RISK_ORDER: dict[str, int] = {"low": 0, "medium": 1, "high": 2}
MAX_REASON = 300


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    decided_by: DecidedBy
    rule: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def risk(self) -> Risk:
        return RISK[self.action]

    @property
    def escalates(self) -> bool:
        return self.action in ESCALATIONS

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "decided_by": self.decided_by, "rule": self.rule}


def decision_schema(actions: tuple[str, ...] = LLM_ACTIONS) -> dict[str, Any]:
    """The JSON schema llama-server constrains the reflection's answer to (``json_schema``)."""
    return {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": list(actions)},
            "reason": {"type": "string", "maxLength": 160},
        },
        "required": ["action", "reason"],
        "additionalProperties": False,
    }


def parse_decision(text: str, *, decided_by: DecidedBy, allowed: tuple[str, ...] = LLM_ACTIONS) -> Decision:
    """A decision from the LLM's JSON text; raises :class:`ActionRefused` for anything off the allowlist."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ActionRefused(f"the answer is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ActionRefused("the answer is not a JSON object")
    action = data.get("action")
    if not isinstance(action, str) or action not in allowed:
        raise ActionRefused(f"action {str(action)[:80]!r} is not on the allowlist ({', '.join(allowed)})")
    extra = set(data) - {"action", "reason"}
    if extra:
        raise ActionRefused(f"action {action!r} takes no arguments {sorted(extra)}")
    reason = data.get("reason")
    return Decision(action, str(reason or "")[:MAX_REASON], decided_by, raw=data)
