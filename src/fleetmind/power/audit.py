"""Every decision of the power agent, kept twice: a line of ``<state dir>/power/audit.jsonl`` and an event in
Mission Control's live stream (``POST /api/events`` with an operator key).

The audit line is written first and always (appended, flushed, fsynced): it is the record. The event is best
effort: Mission Control being down never stops the agent; the first failure of an outage is logged, and the audit
line notes whether the event got through.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("fleetmind.power")


class Recorder:
    """Writes audit lines to ``path`` and posts events to ``events_url`` (when set) with ``events_key``."""

    def __init__(
        self, path: Path, *, events_url: str | None = None, events_key: str | None = None, timeout_s: float = 3.0
    ) -> None:
        self.path = path
        self.events_url = events_url
        self._headers = {"Authorization": f"Bearer {events_key}"} if events_key else {}
        self.timeout_s = timeout_s
        self._failing = False
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(
        self, kind: str, message: str, data: dict[str, Any] | None = None, *, level: str = "info"
    ) -> dict[str, Any]:
        """Publish one event ``power.<kind>`` and append its audit line; returns the line."""
        data = dict(data or {})
        event = {"kind": f"power.{kind}", "message": message[:2000], "level": level, "data": data}
        delivered = self._post(event) if self.events_url else None
        line = {"ts": round(time.time(), 3), **event, "event_delivered": delivered}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.info("%s", message, extra={"power": kind, "power_data": data})
        return line

    def _post(self, event: dict[str, Any]) -> bool:
        assert self.events_url is not None
        try:
            response = httpx.post(self.events_url, json=event, headers=self._headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            if not self._failing:
                log.warning("Mission Control unreachable at %s: %s", self.events_url, exc)
            self._failing = True
            return False
        if response.status_code >= 400:
            log.warning("Mission Control refused a power event: HTTP %d %s", response.status_code, response.text[:200])
            return False
        self._failing = False
        return True
