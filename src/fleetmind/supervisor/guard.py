"""Guard rails: a cooldown per job, an attempt budget with backoff, each failure diagnosed once, no storms.

:meth:`Guard.admit` says what to do with a detected fault before anything is diagnosed: ``skip`` (seen
already, the job is cooling down or backing off, or it was escalated and nobody has touched it since),
``escalate`` (the budget is spent, or the failure came back within ``storm_window_s`` of a fix: healing it
again would start a storm), or ``heal``. Time comes from an injectable clock (monotonic seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from fleetmind.supervisor.detect import Fault

Verdict = Literal["heal", "skip", "escalate"]


@dataclass
class JobRecord:
    attempts: int = 0
    last_action_at: float | None = None
    last_healed_at: float | None = None
    escalated_version: int | None = None
    seen: set[str] = field(default_factory=set)


class Guard:
    def __init__(
        self,
        *,
        cooldown_s: float = 5.0,
        budget: int = 3,
        backoff: float = 2.0,
        storm_window_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cooldown_s < 0 or budget < 1 or backoff < 1 or storm_window_s < 0:
            raise ValueError("cooldown_s >= 0, budget >= 1, backoff >= 1 and storm_window_s >= 0 are required")
        self.cooldown_s, self.budget, self.backoff, self.storm_window_s = cooldown_s, budget, backoff, storm_window_s
        self.clock = clock
        self.jobs: dict[str, JobRecord] = {}
        self.storms_prevented = 0

    def record(self, job: str) -> JobRecord:
        return self.jobs.setdefault(job, JobRecord())

    def admit(self, fault: Fault) -> tuple[Verdict, str]:
        rec = self.record(fault.job)
        now = self.clock()
        if fault.signature in rec.seen:
            return "skip", "this failure was diagnosed already"
        if rec.escalated_version is not None:
            if fault.job_version <= rec.escalated_version:
                return "skip", "escalated; waiting for a person to change the job"
            rec.escalated_version = None
            rec.attempts = 0
        if rec.last_action_at is not None:
            wait = self.cooldown_s * self.backoff ** max(rec.attempts - 1, 0)
            if now - rec.last_action_at < wait:
                return "skip", f"cooling down ({wait:.0f}s after attempt {rec.attempts})"
        rec.seen.add(fault.signature)
        if rec.last_healed_at is not None and now - rec.last_healed_at < self.storm_window_s:
            self.storms_prevented += 1
            return "escalate", f"it failed again {now - rec.last_healed_at:.0f}s after it was healed: no storm"
        if rec.attempts >= self.budget:
            return "escalate", f"attempt budget of {self.budget} spent"
        return "heal", ""

    def acted(self, job: str) -> int:
        """An action was applied; returns the attempt number."""
        rec = self.record(job)
        rec.attempts += 1
        rec.last_action_at = self.clock()
        return rec.attempts

    def healed(self, job: str) -> None:
        self.record(job).last_healed_at = self.clock()

    def escalated(self, job: str, version: int) -> None:
        self.record(job).escalated_version = version
