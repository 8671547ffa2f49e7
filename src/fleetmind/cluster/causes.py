"""Read why a task is not running out of Nomad's ``TaskState`` (the same on Nomad and on the embedded orchestrator).

Nomad's ``Terminated`` event carries ``ExitCode`` and ``Signal``; the embedded orchestrator adds the cause in words
(``Details["cause"]``, from :func:`fleetmind.exits.describe_exit`). Reading a real Nomad's events, the words are made
here from the numbers. ``fleetmind status``, ``/api/status``, Mission Control and ``fleetmind up`` all use this one
reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetmind.exits import FATAL_SIGNALS, describe_exit


@dataclass(frozen=True)
class TaskCause:
    text: str  # the last abnormal end, in words
    crashes: int  # abnormal ends among the events kept (Nomad keeps the last 10)
    fatal: bool  # no restart can help (SIGILL), or the task is dead and failed
    signal: int
    exit_code: int


def _abnormal(event: dict[str, Any]) -> bool:
    return event.get("Type") == "Terminated" and (
        int(event.get("ExitCode") or 0) != 0 or int(event.get("Signal") or 0) != 0
    )


def task_cause(state: dict[str, Any]) -> TaskCause | None:
    """The cause of the task's last abnormal end, or None if it never ended abnormally (as far as events tell)."""
    events = [e for e in state.get("Events") or [] if isinstance(e, dict)]
    crashes = [e for e in events if _abnormal(e)]
    if not crashes:
        return None
    last = crashes[-1]
    code, sig = int(last.get("ExitCode") or 0), int(last.get("Signal") or 0)
    text = str((last.get("Details") or {}).get("cause") or describe_exit(code, sig))
    failed = bool(state.get("Failed")) and state.get("State") == "dead"
    if failed:
        gave_up = next((e for e in reversed(events) if e.get("Type") == "Not Restarting"), None)
        text += "; not restarting" + (f": {gave_up.get('DisplayMessage')}" if gave_up else "")
    return TaskCause(text=text, crashes=len(crashes), fatal=failed or sig in FATAL_SIGNALS, signal=sig, exit_code=code)
