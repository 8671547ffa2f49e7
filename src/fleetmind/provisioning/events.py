"""Job events: what a provisioning job reports while it runs, for logs and for Mission Control's live stream.

The runner publishes a :class:`JobEvent` when a job is queued, starts, prints a line (one per ansible-runner
event) and finishes. Every event is logged through :mod:`logging` with structured ``extra=`` fields
(``job_id``, ``hostname``, ``event``) and handed to each registered sink. A sink is any callable taking a
:class:`JobEvent` -- a plain function, ``asyncio.Queue.put_nowait``, or an ``async def`` (it is scheduled as a
task); sinks run on the service's event loop, and one that raises is logged and never stops a job."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("fleetmind.provisioning.jobs")

EventSink = Callable[["JobEvent"], Awaitable[None] | None]

QUEUED = "job.queued"
STARTED = "job.started"
OUTPUT = "job.output"
FINISHED = "job.finished"


@dataclass(frozen=True)
class JobEvent:
    """One thing that happened to one job; ``data`` is JSON-ready."""

    kind: str
    job_id: str
    hostname: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"source": "provisioning", **asdict(self)}


class EventBus:
    """Fans events out to the log and to every sink; :meth:`publish` must be called on the event loop."""

    def __init__(self) -> None:
        self._sinks: list[EventSink] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def add_sink(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def remove_sink(self, sink: EventSink) -> None:
        self._sinks.remove(sink)

    def publish(self, event: JobEvent) -> None:
        level = logging.DEBUG if event.kind == OUTPUT else logging.INFO
        extra = {"job_id": event.job_id, "hostname": event.hostname, "event": event.kind, "data": event.data}
        if event.kind == OUTPUT:
            log.log(level, "%s %s", event.job_id, event.data.get("stdout", ""), extra=extra)
        else:
            log.log(level, "%s %s %s", event.kind, event.job_id, event.hostname, extra=extra)
        for sink in list(self._sinks):
            try:
                result = sink(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
            except Exception:
                log.exception("event sink %r failed", sink)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event sink failed", exc_info=task.exception())

    def publish_threadsafe(self, loop: asyncio.AbstractEventLoop, event: JobEvent) -> None:
        """From a worker thread: run :meth:`publish` on ``loop``; dropped if the loop has closed."""
        try:
            loop.call_soon_threadsafe(self.publish, event)
        except RuntimeError:
            pass
