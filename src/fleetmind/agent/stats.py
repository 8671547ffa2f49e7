"""Counters of what the agent has served, for Mission Control's status page.

The sink at the end of the pipeline records every finished request here: how many were answered, how many
failed (by error code), and the most recent answers with the expert that gave them. Everything is in memory
and starts at zero with the process; long-term metrics belong to a metrics system, not to this page.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RecentRequest:
    id: str
    outcome: str  # "done" or the error code
    expert: str | None
    at: float  # time.time()
    completion_tokens: int = 0


@dataclass
class AgentStats:
    started_at: float = field(default_factory=time.time)
    served: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    by_expert: Counter[str] = field(default_factory=Counter)
    recent: deque[RecentRequest] = field(default_factory=lambda: deque(maxlen=20))

    def record_done(self, request_id: str, expert: str | None, completion_tokens: int) -> None:
        self.served += 1
        if expert:
            self.by_expert[expert] += 1
        self.recent.appendleft(RecentRequest(request_id, "done", expert, time.time(), completion_tokens))

    def record_error(self, request_id: str, code: str, expert: str | None) -> None:
        self.failed += 1
        self.errors[code] += 1
        self.recent.appendleft(RecentRequest(request_id, code, expert, time.time()))

    @property
    def uptime_s(self) -> float:
        return time.time() - self.started_at
