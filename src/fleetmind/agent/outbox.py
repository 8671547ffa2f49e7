"""One request's events on their way from the agent pipeline to whoever reads them (:meth:`AgentRuntime.submit`).

An answer streams one token at a time; a reader that writes each event to a socket (the gateway, Mission Control)
pays a wake-up of itself and of its client for every one, on the cores the model decodes on. An :class:`Outbox`
lets the reader *hold*: while it holds, deltas pile up without waking it, and :meth:`Outbox.drain` hands them back
joined into one; the answer's end (``done`` or ``error``) always wakes it at once, so holding never delays the end.
"""

from __future__ import annotations

import asyncio

from fleetmind.contracts.protocol import AgentEvent


class Outbox:
    """One request's events: the pipeline's sink puts them, one reader waits and drains."""

    __slots__ = ("_eager", "_events", "_waiter")

    def __init__(self) -> None:
        self._events: list[AgentEvent] = []
        self._waiter: asyncio.Future[None] | None = None
        self._eager = True

    def put(self, event: AgentEvent) -> None:
        self._events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self._eager or event.type != "delta"):
            waiter.set_result(None)

    async def wait(self, until: float | None = None) -> None:
        """Until an event is here; with ``until`` (the loop's clock), until the last event or that time."""
        events = self._events
        if events and (until is None or events[-1].type != "delta"):
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter, self._eager = waiter, until is None
        timer = loop.call_at(until, _wake, waiter) if until is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def drain(self) -> list[AgentEvent]:
        """What came since the last drain, in order, runs of deltas of one expert joined into one."""
        events, self._events = self._events, []
        out: list[AgentEvent] = []
        texts: list[list[str]] = []  # the text of each event in ``out``, a run's pieces joined once at the end
        for event in events:
            last = out[-1] if out else None
            if last is not None and event.type == last.type == "delta" and event.expert == last.expert:
                texts[-1].append(event.text)
            else:
                out.append(event)
                texts.append([event.text])
        return [
            e if len(t) == 1 else e.model_copy(update={"text": "".join(t)}) for e, t in zip(out, texts, strict=True)
        ]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
