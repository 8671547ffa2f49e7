"""Reflection: ask the local llama-server for one allowlisted action for a failure no rule understood.

The answer is grammar-constrained JSON (llama-server ``json_schema``) over :func:`.actions.decision_schema`,
and is parsed by :func:`.actions.parse_decision` all the same: an action off the allowlist is refused, never
applied. A *variant* is the reflection's prompt (system text plus instructions); :mod:`.evolve` searches for
better variants and the kept one lives in ``<state>/supervisor/reflection/variant.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetmind.atomic import write_atomic
from fleetmind.llm.chat import ExpertError, complete_sync
from fleetmind.supervisor.actions import LLM_ACTIONS, Decision, decision_schema, parse_decision

log = logging.getLogger(__name__)

DEFAULT_SYSTEM = (
    "You are the self-healing supervisor of a small compute cluster. You read the diagnostics of one failing job "
    "and answer with exactly one action as JSON."
)
DEFAULT_INSTRUCTIONS = (
    "Actions: restart (a transient crash or a hang), increase_memory (killed for memory), increase_cpu (too slow, "
    "timing out), reschedule (its port or node is unusable), rollback (it broke right after an update), "
    "switch_to_fallback_model (its model cannot be served), mark_failed_and_alert (a person must fix it), error "
    "(you cannot tell). Give the reason in one short sentence."
)


def llm_view(diagnostics: dict[str, Any]) -> dict[str, Any]:
    """What the LLM reads of a diagnosis: the facts that tell failures apart, without IDs and timestamps (a small
    model decides better, and three times faster, on a third of the text)."""
    fault = diagnostics.get("fault") or {}
    events = [
        {k: e[k] for k in ("type", "exit_code", "signal", "oom_killed") if e.get(k) not in (None, False)}
        | ({"cause": str(e["cause"])[:200]} if e.get("cause") else {})
        for e in diagnostics.get("events") or []
        if e.get("type") in ("Terminated", "Not Restarting", "Driver Failure", "Restart Signaled")
    ][-3:]
    view: dict[str, Any] = {
        "job": diagnostics.get("job"),
        "fault": {"kind": fault.get("kind"), "summary": str(fault.get("summary") or "")[:300]},
        "restarts": (diagnostics.get("allocation") or {}).get("restarts"),
        "events": events,
        "log_tail": str(diagnostics.get("log_tail") or "")[-400:],
    }
    for key in ("versions", "resources", "model", "state_dir", "static_ports"):
        if diagnostics.get(key) not in (None, [], {}):
            view[key] = diagnostics[key]
    return view


@dataclass(frozen=True)
class Variant:
    system: str = DEFAULT_SYSTEM
    instructions: str = DEFAULT_INSTRUCTIONS
    name: str = "baseline"

    def messages(self, diagnostics: dict[str, Any]) -> list[dict[str, Any]]:
        body = json.dumps(llm_view(diagnostics), sort_keys=True)[:3000]
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": f"{self.instructions}\n\nDiagnostics:\n{body}\n\nAnswer with JSON."},
        ]


def variant_path(state_dir: Path) -> Path:
    return state_dir / "supervisor" / "reflection" / "variant.json"


def load_variant(state_dir: Path | None) -> Variant:
    """The kept variant, or the baseline when none was kept (or the file is unreadable: logged)."""
    if state_dir is None or not variant_path(state_dir).exists():
        return Variant()
    try:
        data = json.loads(variant_path(state_dir).read_text())
        return Variant(str(data["system"]), str(data["instructions"]), str(data.get("name") or "kept"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable reflection variant %s: %s", variant_path(state_dir), exc)
        return Variant()


def save_variant(state_dir: Path, variant: Variant) -> Path:
    path = variant_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(asdict(variant), indent=2) + "\n").encode())
    return path


class Reflector:
    """One LLM decision per call, against the llama-server at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        variant: Variant | None = None,
        api_key: str | None = None,
        schema: dict[str, Any] | None = None,
        timeout_s: float = 60.0,
        max_tokens: int = 128,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the reflection LLM url must be http(s)://..., got {url!r}")
        self.url = url
        self.variant = variant or Variant()
        self.api_key = api_key
        # The schema sent to llama-server; the allowlist check below does not depend on it.
        self.schema = schema or decision_schema()
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens

    def ask(self, diagnostics: dict[str, Any]) -> str:
        """The LLM's raw answer (JSON text)."""
        reply = complete_sync(
            self.url,
            self.variant.messages(diagnostics),
            api_key=self.api_key,  # None: the stack's service secret (llama-server's --api-key)
            timeout_s=self.timeout_s,
            json_schema=self.schema,
            max_tokens=self.max_tokens,
            temperature=0,
        )
        return reply.text

    def decide(self, diagnostics: dict[str, Any]) -> Decision:
        """An allowlisted decision; raises :class:`~fleetmind.supervisor.ActionRefused` for anything else.
        An LLM that cannot be reached yields ``error`` (the failure stays unclassified)."""
        try:
            text = self.ask(diagnostics)
        except ExpertError as exc:
            return Decision("error", f"reflection LLM unavailable: {exc}"[:300], "llm")
        return parse_decision(text, decided_by="llm", allowed=LLM_ACTIONS)
