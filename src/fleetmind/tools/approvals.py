"""Approval gates: a tool call that needs a person waits here until someone approves or denies it, or it expires.

:class:`ApprovalBroker` keeps the calls waiting for a decision. ``await request(...)`` publishes a
:class:`PendingApproval` and waits; Mission Control (or the CLI) lists :meth:`~ApprovalBroker.pending` and calls
:meth:`~ApprovalBroker.decide`, which may run on the event loop or on any other thread: the waiting future is
resolved on its own loop. A request nobody decides within its timeout ends ``expired``; a request whose waiting
task is cancelled ends ``cancelled`` (and the cancellation goes on). Every decision is kept in a short history
(:meth:`~ApprovalBroker.recent`) and reported through ``on_event`` as ``approval_requested`` /
``approval_decided`` with plain-JSON payloads, which is what the live stream publishes; ``on_event`` runs on the
thread that requested or decided, so a listener must be thread-safe (e.g. ``loop.call_soon_threadsafe``).

Nobody approves their own request. A request remembers the API key it was made for (``requester_key``: the key
that ran the tool from Mission Control, or whose chat led the agent to it), taken from :data:`acting_for`, a
context variable the caller sets around ``runner.run`` so the layers between need not carry it. ``decide`` with
``by_key`` equal to it refuses to approve (:class:`SelfApprovalError`; denying one's own request is fine), unless
the person also gives the request's one-time *approval code*: with ``codes_dir`` set, each request writes its code
to ``<codes_dir>/<id>.code`` (mode 0600, in a 0700 folder) and removes it when decided. Reading that file takes a
shell on the machine as the stack's user, which is the second factor: ``fleetmind approvals code ID`` prints it.
A code survives :data:`MAX_CODE_TRIES` wrong tries; after that only another operator can approve.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fleetmind.tools.errors import ApprovalNotFoundError, SelfApprovalError

__all__ = [
    "ApprovalBroker",
    "ApprovalDecision",
    "ApprovalNotFoundError",
    "Outcome",
    "PendingApproval",
    "SelfApprovalError",
    "acting_for",
    "codes_dir_in",
    "read_code",
]

log = logging.getLogger(__name__)

Outcome = Literal["approved", "denied", "expired", "cancelled"]
EventSink = Callable[[str, dict[str, Any]], None]

# The API key id a tool call is made for; set by whoever starts the call (Mission Control's tool runs, the agent's
# workflow for the chat's owner), read by :meth:`ApprovalBroker.request`.
acting_for: ContextVar[str | None] = ContextVar("fleetmind_acting_for", default=None)
MAX_CODE_TRIES = 5
# No 0/O, 1/I/L: a person types it from one screen into another.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_LENGTH = 8


def codes_dir_in(state_dir: Path) -> Path:
    """Where a stack with state dir ``state_dir`` keeps the approvals' one-time codes."""
    return state_dir / "approvals"


def code_path(codes_dir: Path, approval_id: str) -> Path:
    if not approval_id.startswith("apr-") or not approval_id[4:].isalnum():
        raise ApprovalNotFoundError(f"no pending approval {approval_id!r}")
    return codes_dir / f"{approval_id}.code"


def read_code(codes_dir: Path, approval_id: str) -> str:
    """The one-time code of a waiting approval (what ``fleetmind approvals code ID`` prints)."""
    try:
        return code_path(codes_dir, approval_id).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ApprovalNotFoundError(f"no pending approval {approval_id!r} (unknown, decided or expired)") from None


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
    # the API key id the call was made for (see the module docstring); None: nobody's in particular
    requester_key: str | None = None

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
    code: str | None = None
    code_tries: int = 0


def new_approval_id() -> str:
    return f"apr-{secrets.token_hex(6)}"


class ApprovalBroker:
    """Holds pending approvals; thread-safe, one instance shared by the agent, Mission Control and the CLI."""

    def __init__(
        self,
        *,
        timeout_s: float = 300.0,
        on_event: EventSink | None = None,
        history: int = 500,
        codes_dir: Path | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self.on_event = on_event
        # where each request's one-time approval code is written; None: no codes, self-approval is never possible
        self.codes_dir = codes_dir
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
        requester_key: str | None = None,
        approval_id: str | None = None,
    ) -> ApprovalDecision:
        """Wait until a person decides, or until ``timeout_s`` (default: the broker's) passes → ``expired``.
        ``requester_key`` defaults to :data:`acting_for`; ``approval_id`` (default: a new one) lets a caller in
        another process know the id before the decision (Mission Control's ``POST /api/approvals``)."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        if requester_key is None:
            requester_key = acting_for.get()
        loop = asyncio.get_running_loop()
        now = time.time()
        pending = PendingApproval(
            id=approval_id or new_approval_id(),
            tool=tool,
            arguments=dict(arguments),
            risk=risk,
            requester=requester,
            reason=reason,
            created_at=now,
            expires_at=now + timeout,
            requester_key=requester_key,
        )
        future: asyncio.Future[ApprovalDecision] = loop.create_future()
        code = self._write_code(pending.id)
        with self._lock:
            self._waiting[pending.id] = _Waiting(pending, future, loop, code)
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

    def _write_code(self, approval_id: str) -> str | None:
        if self.codes_dir is None:
            return None
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        try:
            self.codes_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.codes_dir, 0o700)
            fd = os.open(code_path(self.codes_dir, approval_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(code + "\n")
        except OSError:
            # without its file nobody could learn the code: the request can still be approved by another operator
            log.exception("could not write the approval code of %s", approval_id)
            return None
        return code

    def _drop_code(self, approval_id: str) -> None:
        if self.codes_dir is not None:
            with contextlib.suppress(OSError, ApprovalNotFoundError):
                code_path(self.codes_dir, approval_id).unlink(missing_ok=True)

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
        self._drop_code(approval_id)
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

    def decide(
        self,
        approval_id: str,
        *,
        approve: bool,
        by: str,
        note: str = "",
        by_key: str | None = None,
        code: str | None = None,
    ) -> ApprovalDecision:
        """Approve or deny a waiting request. ``by_key`` is the deciding API key's id (None: a person at this
        machine's terminal); approving a request made for that same key needs its one-time ``code`` too.
        Raises :class:`ApprovalNotFoundError` if it is not waiting, :class:`SelfApprovalError` for a self-approval
        without the right code."""
        if not by or not by.strip():
            raise ValueError("decide() needs the name of the person deciding (by=...)")
        if approve and by_key is not None:
            with self._lock:
                waiting = self._waiting.get(approval_id)
                if waiting is None:
                    raise ApprovalNotFoundError(f"no pending approval {approval_id!r} (unknown or already decided)")
                if waiting.pending.requester_key == by_key:
                    self._check_code(waiting, code)
                    note = (note + " " if note else "") + "(own request, approved with its one-time code)"
        decision = self._finish(approval_id, "approved" if approve else "denied", by=by, note=note)
        if decision is None:
            raise ApprovalNotFoundError(f"no pending approval {approval_id!r} (unknown or already decided)")
        return decision

    def _check_code(self, waiting: _Waiting, code: str | None) -> None:
        """Called under the lock: passes only for the request's own code, within its tries."""
        expected = waiting.code
        if expected is None or waiting.code_tries >= MAX_CODE_TRIES:
            raise SelfApprovalError(
                "nobody approves their own request: another operator must approve it"
                + (" (its approval code is used up)" if expected is not None else "")
            )
        if not code:
            raise SelfApprovalError(
                "nobody approves their own request: another operator must approve it, or give its one-time "
                f"approval code (`fleetmind approvals code {waiting.pending.id}` on the machine running the agent)"
            )
        if not hmac.compare_digest(code.strip().upper().encode(), expected.encode()):
            waiting.code_tries += 1
            raise SelfApprovalError(
                f"wrong approval code ({MAX_CODE_TRIES - waiting.code_tries} tries left for this request)"
            )

    def decision(self, approval_id: str) -> ApprovalDecision | None:
        """The decision on ``approval_id`` if it was decided (and is still among the recent ones)."""
        with self._lock:
            return next((d for d in reversed(self._recent) if d.id == approval_id), None)

    def recent(self, limit: int = 50) -> list[ApprovalDecision]:
        """The latest decisions, newest first."""
        with self._lock:
            items = list(self._recent)
        return items[::-1][: max(limit, 0)]
