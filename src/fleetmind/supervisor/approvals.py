"""Approval for risky actions: an action at or above the approval level waits until a person decides.

:class:`BrokerApprovals` asks the same :class:`~fleetmind.tools.approvals.ApprovalBroker` that Mission
Control's ``/api/approvals`` routes decide on, so the request shows on its page and an operator approves or
denies it there; the supervisor waits (it runs in a thread, the broker's loop does the waiting). A denial, or
nobody deciding in time, means the action is not applied. Without any gate an action that needs approval is
not applied either: it is escalated.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from fleetmind.tools.approvals import ApprovalBroker

REQUESTER = "fleetmind-supervisor"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # approved, denied, expired, cancelled, or "no_gate"
    by: str | None
    approval_id: str | None = None

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"


class Approvals(Protocol):
    def ask(self, *, job: str, action: str, risk: str, reason: str, detail: str) -> Verdict: ...


class BrokerApprovals:
    def __init__(self, broker: ApprovalBroker, loop: asyncio.AbstractEventLoop, *, timeout_s: float = 300.0) -> None:
        self.broker, self.loop, self.timeout_s = broker, loop, timeout_s

    def ask(self, *, job: str, action: str, risk: str, reason: str, detail: str) -> Verdict:
        arguments: dict[str, Any] = {"job": job, "action": action, "detail": detail}
        future = asyncio.run_coroutine_threadsafe(
            self.broker.request(
                tool=f"supervisor.{action}",
                arguments=arguments,
                risk=risk,
                requester=REQUESTER,
                reason=reason,
                timeout_s=self.timeout_s,
                requester_key=REQUESTER,
            ),
            self.loop,
        )
        decision = future.result(self.timeout_s + 10)
        return Verdict(decision.outcome, decision.by, decision.id)
