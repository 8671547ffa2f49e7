"""Approval for risky actions: an action at or above the approval level waits until a person decides.

:class:`BrokerApprovals` asks the same :class:`~fleetmind.tools.approvals.ApprovalBroker` that Mission
Control's ``/api/approvals`` routes decide on, so the request shows on its page and an operator approves or
denies it there; the supervisor waits (it runs in a thread, the broker's loop does the waiting).
:class:`HttpApprovals` is the same gate for a supervisor in its own process (``fleetmind up``'s job): it files the
request with Mission Control's ``POST /api/approvals`` under the stack's service credential and polls ``GET
/api/approvals/{id}`` until a person decided. A denial, or nobody deciding in time, means the action is not
applied. Without any gate an action that needs approval is not applied either: it is escalated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from fleetmind.supervisor import supervisor_headers
from fleetmind.tools.approvals import ApprovalBroker

REQUESTER = "fleetmind-supervisor"

log = logging.getLogger(__name__)


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


class HttpApprovals:
    """Files each request with Mission Control (``url`` = ``http://host:port/api/approvals``) and waits for it."""

    def __init__(
        self, url: str, secret: str, *, timeout_s: float = 300.0, poll_s: float = 1.0, http_timeout_s: float = 5.0
    ) -> None:
        self.url, self.timeout_s, self.poll_s, self.http_timeout_s = url.rstrip("/"), timeout_s, poll_s, http_timeout_s
        self.headers = supervisor_headers(secret)

    def ask(self, *, job: str, action: str, risk: str, reason: str, detail: str) -> Verdict:
        body = {
            "action": f"supervisor.{action}",
            "arguments": {"job": job, "action": action, "detail": detail[:500]},
            "risk": risk,
            "reason": reason[:2000],
            "timeout_s": self.timeout_s,
        }
        try:
            filed = httpx.post(self.url, json=body, headers=self.headers, timeout=self.http_timeout_s)
            filed.raise_for_status()
            approval_id = str(filed.json()["id"])
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("could not file an approval request with Mission Control at %s: %s", self.url, exc)
            return Verdict("no_gate", None)
        deadline = time.monotonic() + self.timeout_s + 10
        while time.monotonic() < deadline:
            time.sleep(self.poll_s)
            try:
                answer = httpx.get(f"{self.url}/{approval_id}", headers=self.headers, timeout=self.http_timeout_s)
                answer.raise_for_status()
                state = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.info("approval %s: Mission Control did not answer (%s); asking again", approval_id, exc)
                continue
            if state.get("status") == "decided":
                return Verdict(str(state.get("outcome")), state.get("by"), approval_id)
        return Verdict("expired", None, approval_id)
