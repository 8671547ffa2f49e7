"""Adaptation cases: a failure reflection could not handle becomes a YAML test case, one file per case.

Cases live in ``<state>/supervisor/cases/v1/<id>.yaml``: ``diagnostics`` in, ``expected`` out (the action
class a good reflection returns: ``heal`` = any healing action, or one named action), with where it came from.
The folder's ``v1`` is the case format's version. Loading validates every file; a broken one is reported, not
silently skipped.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetmind.atomic import write_atomic
from fleetmind.supervisor import SupervisorError
from fleetmind.supervisor.actions import ESCALATIONS, LLM_ACTIONS

CASES_VERSION = "v1"
HEAL = "heal"  # the expected class: any action that is not an escalation


@dataclass(frozen=True)
class Case:
    id: str
    diagnostics: dict[str, Any]
    expected: str  # "heal" or one action name
    note: str = ""

    def passes(self, action: str) -> bool:
        if self.expected == HEAL:
            return action in LLM_ACTIONS and action not in ESCALATIONS
        return action == self.expected


def cases_dir(state_dir: Path) -> Path:
    return state_dir / "supervisor" / "cases" / CASES_VERSION


def save_case(state_dir: Path, diagnostics: dict[str, Any], *, expected: str = HEAL, note: str = "") -> Path:
    """Write one case (idempotent: the same diagnostics give the same file)."""
    if expected != HEAL and expected not in LLM_ACTIONS:
        raise ValueError(f"expected must be {HEAL!r} or an allowlisted action, got {expected!r}")
    stable = {k: v for k, v in diagnostics.items() if k not in ("versions", "state_dir")}
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:12]
    case_id = f"{diagnostics.get('job', 'job')}-{diagnostics.get('fault', {}).get('kind', 'fault')}-{digest}"
    folder = cases_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case_id}.yaml"
    doc = {
        "id": case_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": note,
        "expected": expected,
        "diagnostics": diagnostics,
    }
    write_atomic(path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode())
    return path


def load_cases(state_dir: Path) -> list[Case]:
    out = []
    for path in sorted(cases_dir(state_dir).glob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text())
            case = Case(str(doc["id"]), dict(doc["diagnostics"]), str(doc["expected"]), str(doc.get("note") or ""))
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise SupervisorError(f"case {path} is not a valid case: {exc}") from None
        if case.expected != HEAL and case.expected not in LLM_ACTIONS:
            raise SupervisorError(f"case {path}: expected {case.expected!r} is neither {HEAL!r} nor an action")
        out.append(case)
    return out
