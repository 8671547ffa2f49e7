"""Nomad's restart policy for a task: ``attempts`` restarts within ``interval``, ``delay`` apart; then
``mode``.

Mirrors Nomad's restart tracker: the interval window opens at the first restart and resets when it has
passed; past the attempts, mode ``fail`` gives up (the task is dead and failed) and mode ``delay`` waits for
the rest of the window and starts again. A restart asked for by ``check_restart`` counts like a failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fleetmind.cluster.durations import format_duration


@dataclass(frozen=True)
class Decision:
    restart: bool
    delay_ns: int
    reason: str


class RestartTracker:
    """Decides, after each exit, whether and when a task starts again."""

    def __init__(self, policy: dict[str, Any], *, clock: Any = time.monotonic_ns) -> None:
        self.attempts = int(policy.get("Attempts", 2))
        self.interval = int(policy.get("Interval", 1800 * 10**9))
        self.delay = int(policy.get("Delay", 15 * 10**9))
        self.mode = str(policy.get("Mode", "fail"))
        self._clock = clock
        self._window_start: int | None = None
        self.count = 0

    def next(self) -> Decision:
        now = self._clock()
        if self._window_start is None or now - self._window_start > self.interval:
            self._window_start, self.count = now, 0
        self.count += 1
        if self.count <= self.attempts:
            return Decision(True, self.delay, "Restart within policy")
        if self.mode == "fail":
            return Decision(
                False,
                0,
                f"Exceeded allowed attempts {self.attempts} in interval {format_duration(self.interval)} "
                f'and mode is "fail"',
            )
        wait = max(self.delay, self._window_start + self.interval - now)
        return Decision(
            True,
            wait,
            f"Exceeded allowed attempts {self.attempts} in interval {format_duration(self.interval)} "
            f'and mode is "delay"; waiting {format_duration(wait)}',
        )
