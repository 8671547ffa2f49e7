"""Approval gates: a tool call that needs a person waits here until someone approves or denies it, or it expires.

:class:`ApprovalBroker` keeps the calls waiting for a decision. ``await request(...)`` publishes a
:class:`PendingApproval` and waits; Mission Control (or the CLI) lists :meth:`~ApprovalBroker.pending` and calls
:meth:`~ApprovalBroker.decide`, which may run on the event loop or on any other thread: the waiting future is
resolved on its own loop. A request nobody decides within its timeout ends ``expired``; a request whose waiting
task is cancelled ends ``cancelled`` (and the cancellation goes on). Every decision is kept in a short history
(:meth:`~ApprovalBroker.recent`) and reported through ``on_event`` as ``approval_requested`` /
``approval_decided`` with plain-JSON payloads, which is what the live stream publishes; ``on_event`` runs on the
thread that requested or decided, so a listener must be thread-safe (e.g. ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fleetmind.tools.errors import ApprovalNotFoundError

__all__ = ["ApprovalBroker", "ApprovalDecision", "ApprovalNotFoundError", "Outcome", "PendingApproval"]

log = logging.getLogger(__name__)

Outcome = Literal["approved", "denied", "expired", "cancelled"]
EventSink = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class PendingApproval:
    """A tool call waiting for a person; times are ``time.time()`` seconds."""

    id: str
    tool: str
    arguments: dict[str, Any]
    risk: str
    requester: str
    reason: str
    created_at: float
    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ApprovalDecision:
    """How a request ended; ``by`` is the person (None for ``expired``/``cancelled``)."""

    id: str
    tool: str
    outcome: Outcome
    by: str | None
    at: float
    note: str = ""

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Waiting:
    pending: PendingApproval
    future: asyncio.Future[ApprovalDecision]
    loop: asyncio.AbstractEventLoop


class ApprovalBroker:
    """Holds pending approvals; thread-safe, one instance shared by the agent, Mission Control and the CLI."""

    def __init__(
        self,
        *,
        timeout_s: float = 300.0,
        on_event: EventSink | None = None,
        history: int = 500,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self.on_event = on_event
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiting] = {}
        self._recent: deque[ApprovalDecision] = deque(maxlen=history)

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, payload)
        except Exception:  # a broken listener must not break the gate
            log.exception("approval event listener failed on %s", kind)

    async def request(
        self,
        *,
        tool: str,
        arguments: dict[str, Any],
        risk: str,
        requester: str,
        reason: str = "",
        timeout_s: float | None = None,
    ) -> ApprovalDecision:
        """Wait until a person decides, or until ``timeout_s`` (default: the broker's) passes → ``expired``."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        now = time.time()
        pending = PendingApproval(
            id=f"apr-{secrets.token_hex(6)}",
            tool=tool,
            arguments=dict(arguments),
            risk=risk,
            requester=requester,
            reason=reason,
            created_at=now,
            expires_at=now + timeout,
        )
        future: asyncio.Future[ApprovalDecision] = loop.create_future()
        with self._lock:
            self._waiting[pending.id] = _Waiting(pending, future, loop)
        self._emit("approval_requested", pending.to_dict())
        try:
            # shield: a timeout must not cancel the future a concurrent decide() may be resolving right now
            return await asyncio.wait_for(asyncio.shield(future), timeout=max(timeout, 0.0))
        except TimeoutError:
            decision = self._finish(pending.id, "expired", by=None, note=f"no decision within {timeout:g}s")
            return decision if decision is not None else await future
        except asyncio.CancelledError:
            self._finish(pending.id, "cancelled", by=None, note="the waiting task was cancelled")
            raise

    def _finish(self, approval_id: str, outcome: Outcome, *, by: str | None, note: str) -> ApprovalDecision | None:
        """Decide ``approval_id`` if it is still waiting; None when someone else decided it first."""
        with self._lock:
            waiting = self._waiting.pop(approval_id, None)
            if waiting is None:
                return None
            decision = ApprovalDecision(
                id=approval_id, tool=waiting.pending.tool, outcome=outcome, by=by, at=time.time(), note=note
            )
            self._recent.append(decision)
        self._resolve(waiting, decision)
        payload = decision.to_dict()
        payload["requester"] = waiting.pending.requester
        self._emit("approval_decided", payload)
        return decision

    @staticmethod
    def _resolve(waiting: _Waiting, decision: ApprovalDecision) -> None:
        def settle() -> None:
            if not waiting.future.done():
                waiting.future.set_result(decision)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is waiting.loop:
            settle()
        else:
            # the loop may already be closed (its request was abandoned); the decision is still recorded
            with contextlib.suppress(RuntimeError):
                waiting.loop.call_soon_threadsafe(settle)

    def pending(self) -> list[PendingApproval]:
        """Requests waiting now, oldest first."""
        with self._lock:
            items = [w.pending for w in self._waiting.values()]
        return sorted(items, key=lambda p: p.created_at)

    def get(self, approval_id: str) -> PendingApproval:
        """One waiting request. Raises :class:`ApprovalNotFoundError`."""
        with self._lock:
            waiting = self._waiting.get(approval_id)
        if waiting is None:
            raise ApprovalNotFoundError(f"no pending approval {approval_id!r} (unknown or already decided)")
        return waiting.pending

    def decide(self, approval_id: str, *, approve: bool, by: str, note: str = "") -> ApprovalDecision:
        """Approve or deny a waiting request. Raises :class:`ApprovalNotFoundError` if it is not waiting."""
        if not by or not by.strip():
            raise ValueError("decide() needs the name of the person deciding (by=...)")
        decision = self._finish(approval_id, "approved" if approve else "denied", by=by, note=note)
        if decision is None:
            raise ApprovalNotFoundError(f"no pending approval {approval_id!r} (unknown or already decided)")
        return decision

    def recent(self, limit: int = 50) -> list[ApprovalDecision]:
        """The latest decisions, newest first."""
        with self._lock:
            items = list(self._recent)
        return items[::-1][: max(limit, 0)]
