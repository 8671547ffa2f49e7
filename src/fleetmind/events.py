"""The live event stream behind Mission Control: what the agent and the stack are doing, as it happens.

:class:`EventHub` numbers every event (``seq``, increasing by one from 1 within a hub, whose ``epoch`` names
it) and keeps the latest ``backlog`` of them, so a page that opens or reconnects sees recent history and resumes
from the last ``seq`` it saw. :meth:`EventHub.publish` may be called from any thread (provisioning jobs and tool
runs live in threads) as well as from the event loop, and never waits for a reader: each
:class:`Subscription` has a bounded buffer, and a reader that falls behind loses the events beyond it and gets
one :class:`Dropped` notice with their count and ``seq`` range instead, so a slow browser can never slow the
agent. :class:`EventLogHandler` feeds the hub from the standard ``logging`` records that carry an ``event``
field (``extra={"event": ...}``), which is how fleetmind code already reports agent turns, routing and tool calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetmind.security.text import scrub

Level = Literal["debug", "info", "warning", "error"]
LEVELS: tuple[Level, ...] = ("debug", "info", "warning", "error")

# One event's data, serialised, may be at most this large; bigger payloads are cut to a note (a log line
# carrying a whole state file must not flood every browser).
MAX_DATA_BYTES = 16 * 1024
MAX_MESSAGE_CHARS = 4000


@dataclass(frozen=True)
class Event:
    seq: int
    ts: float
    kind: str
    level: Level
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "event",
            "seq": self.seq,
            "ts": self.ts,
            "kind": self.kind,
            "level": self.level,
            "message": self.message,
            "data": self.data,
        }


@dataclass(frozen=True)
class Dropped:
    """Events ``first_seq..last_seq`` (``count`` of them) that this reader did not get."""

    count: int
    first_seq: int
    last_seq: int
    reason: Literal["slow_reader", "backlog"] = "slow_reader"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "dropped",
            "count": self.count,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "reason": self.reason,
        }


Item = Event | Dropped


def json_safe(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as plain JSON values (anything else as its ``str``), cut to a note when too large."""
    try:
        text = json.dumps(data, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = json.dumps({k: str(v) for k, v in data.items()}, ensure_ascii=False)
    # a lone surrogate would make every later response that carries this event fail to encode (one bad event
    # must not break GET /api/events for everyone): it becomes U+FFFD here
    text = scrub(text)
    if len(text.encode()) > MAX_DATA_BYTES:
        return {"truncated": True, "bytes": len(text.encode())}
    loaded: dict[str, Any] = json.loads(text)
    return loaded


class Subscription:
    """One reader's view of the hub: a bounded buffer filled by :meth:`EventHub.publish`, read with :meth:`get`."""

    def __init__(self, hub: EventHub, maxsize: int, loop: asyncio.AbstractEventLoop) -> None:
        self._hub = hub
        self.maxsize = maxsize
        self._loop = loop
        self._items: deque[Item] = deque()
        self._wake = asyncio.Event()
        self._drop_count = 0
        self._drop_first = 0
        self._drop_last = 0
        self.closed = False

    # Called by the hub with its lock held.
    def _offer(self, item: Item) -> bool:
        """Buffer ``item``; returns True when the reader should be woken."""
        if len(self._items) >= self.maxsize and isinstance(item, Event):
            if not self._drop_count:
                self._drop_first = item.seq
            self._drop_count += 1
            self._drop_last = item.seq
            return False
        if self._drop_count:
            # Room again: the notice goes first, so the reader learns of the gap where it happened.
            self._items.append(self._take_drops())
        self._items.append(item)
        return True

    def _take_drops(self) -> Dropped:
        notice = Dropped(self._drop_count, self._drop_first, self._drop_last)
        self._drop_count = 0
        return notice

    def _notify(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    def get_nowait(self) -> Item | None:
        with self._hub._lock:
            if self._items:
                return self._items.popleft()
            if self._drop_count:
                return self._take_drops()
            return None

    async def get(self, wait_s: float | None = None) -> Item | None:
        """The next event or drop notice; None when ``wait_s`` passes first or the subscription is closed."""
        while not self.closed:
            item = self.get_nowait()
            if item is not None:
                return item
            self._wake.clear()
            # Re-check after clearing: a publish between the two would otherwise be slept through.
            item = self.get_nowait()
            if item is not None:
                return item
            try:
                await asyncio.wait_for(self._wake.wait(), wait_s)
            except TimeoutError:
                return None
        return None

    def pending(self) -> int:
        with self._hub._lock:
            return len(self._items)

    def close(self) -> None:
        self.closed = True
        self._hub._unsubscribe(self)
        self._notify()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EventHub:
    """Numbered events with a bounded backlog and bounded, non-blocking per-reader buffers."""

    def __init__(self, *, backlog: int = 2000, queue_size: int = 2000) -> None:
        if backlog < 1 or queue_size < 1:
            raise ValueError("backlog and queue_size must be at least 1")
        self.epoch = uuid.uuid4().hex[:12]
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._backlog: deque[Event] = deque(maxlen=backlog)
        self._seq = 0
        self._subscribers: list[Subscription] = []

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, kind: str, message: str, /, *, level: Level = "info", **data: Any) -> Event:
        """Number, keep and fan out one event; never blocks on a reader. Safe from any thread."""
        return self.publish_data(kind, message, level=level, data=data)

    def publish_data(
        self, kind: str, message: str, *, level: Level = "info", data: dict[str, Any] | None = None
    ) -> Event:
        """:meth:`publish` with the data as one dict (its keys may then be anything, ``level`` included)."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")
        payload = json_safe(data) if data else {}
        wake: list[Subscription] = []
        with self._lock:
            self._seq += 1
            event = Event(
                self._seq, round(time.time(), 3), scrub(kind), level, scrub(message[:MAX_MESSAGE_CHARS]), payload
            )
            self._backlog.append(event)
            for sub in self._subscribers:
                if sub._offer(event):
                    wake.append(sub)
        for sub in wake:
            sub._notify()
        return event

    def recent(self, *, since: int = 0, limit: int | None = None) -> list[Event]:
        """Backlog events with ``seq > since`` (the last ``limit`` of them)."""
        with self._lock:
            events = [e for e in self._backlog if e.seq > since]
        return events[-limit:] if limit else events

    def subscribe(self, *, since: int | None = None, maxsize: int | None = None) -> Subscription:
        """A reader that first gets the backlog after ``since`` (None: nothing old), then every new event.

        Taking the backlog and joining the fan-out happen under one lock, so no event is missed or seen twice.
        A ``since`` older than the backlog reaches gets a ``Dropped(reason="backlog")`` notice for the gap;
        one beyond the last ``seq`` (a reader of an earlier hub) starts from the whole backlog.
        """
        sub = Subscription(self, maxsize or self.queue_size, asyncio.get_running_loop())
        with self._lock:
            if since is not None:
                if since > self._seq:
                    since = 0
                old = [e for e in self._backlog if e.seq > since]
                first_kept = old[0].seq if old else self._seq + 1
                if since + 1 < first_kept and self._seq > since:
                    missing_last = first_kept - 1
                    sub._items.append(Dropped(missing_last - since, since + 1, missing_last, "backlog"))
                for event in old:
                    sub._offer(event)
            self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)


# Attributes every LogRecord has; whatever else a record carries came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SKIP = _STANDARD | {"color_message", "event"}


def level_of(levelno: int) -> Level:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info" if levelno >= logging.INFO else "debug"


class EventLogHandler(logging.Handler):
    """Publishes every log record that carries an ``event`` field into ``hub``; other records are ignored."""

    def __init__(self, hub: EventHub, *, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        kind = getattr(record, "event", None)
        if not isinstance(kind, str) or not kind:
            return
        try:
            data = {k: v for k, v in vars(record).items() if k not in _SKIP and not k.startswith("_")}
            data["logger"] = record.name
            self.hub.publish_data(kind, record.getMessage(), level=level_of(record.levelno), data=data)
        except Exception:
            self.handleError(record)
