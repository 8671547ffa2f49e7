"""Forwarding job events to Mission Control's live stream (``POST /api/events`` on the agent process).

The provisioning API runs in its own process, so its job events reach the page a person is watching over
HTTP: :class:`EventForwarder` is an :class:`~fleetmind.provisioning.events.EventBus` sink that puts each
event on a bounded queue, and one background task posts them in order with the configured API key. A slow or
absent Mission Control never slows a playbook run: when the queue is full, events are dropped and counted,
and the next event that gets through carries the count (``data.dropped``), so the stream says what it lost.
Delivery errors are logged once per outage, not once per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from fleetmind.provisioning.events import OUTPUT, JobEvent

log = logging.getLogger("fleetmind.provisioning.forward")

_RETRY_S = 2.0


def to_stream_event(event: JobEvent) -> dict[str, Any]:
    """The body Mission Control's ``POST /api/events`` takes for one job event."""
    if event.kind == OUTPUT:
        message = f"{event.hostname}: {event.data.get('stdout', '')}"
    else:
        status = event.data.get("state")
        message = (
            f"{event.kind} {event.hostname} ({event.job_id})"
            + (f": {status}" if status else "")
            + (f" — {event.data['error']}" if event.data.get("error") else "")
        )
    failed = event.data.get("state") in ("failed", "error", "interrupted", "timeout")
    return {
        "kind": event.kind,
        "message": message[:2000],
        "level": "error" if failed else "info",
        "data": event.to_dict(),
    }


class EventForwarder:
    """A bus sink that posts each job event to ``url``; start it on the service's loop, close it on shutdown."""

    def __init__(self, url: str, api_key: str, *, max_queue: int = 2000, timeout_s: float = 5.0) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._queue: asyncio.Queue[JobEvent] = asyncio.Queue(maxsize=max_queue)
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.sent = 0

    def __call__(self, event: JobEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="provisioning-event-forwarder")

    async def close(self, *, drain_s: float = 2.0) -> None:
        """Give queued events ``drain_s`` to go out, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        failing = False
        async with httpx.AsyncClient(timeout=self._timeout_s, headers=self._headers) as client:
            while True:
                event = await self._queue.get()
                body = to_stream_event(event)
                if self.dropped:
                    body["data"]["dropped"] = self.dropped
                while True:
                    try:
                        response = await client.post(self.url, json=body)
                    except httpx.HTTPError as exc:
                        if not failing:
                            log.warning("Mission Control unreachable at %s: %s", self.url, exc)
                            failing = True
                        await asyncio.sleep(_RETRY_S)
                        if self._queue.full():  # a long outage: give up on this one rather than block the rest
                            self.dropped += 1
                            break
                        continue
                    if response.status_code >= 400:
                        # refused (bad key, bad body): retrying the same body cannot help
                        log.warning(
                            "Mission Control refused an event: HTTP %d %s", response.status_code, response.text[:200]
                        )
                    else:
                        if failing:
                            log.info("Mission Control reachable again at %s", self.url)
                        failing = False
                        self.sent += 1
                        if "dropped" in body["data"]:
                            self.dropped -= body["data"]["dropped"]
                    break
                self._queue.task_done()
