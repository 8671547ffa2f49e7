"""The audit: one JSON object a line in ``<state>/supervisor/audit.jsonl``, each also sent to the event stream.

Every decision and its outcome is written, with at least ``job``, ``fault``, ``diagnosis``, ``action``,
``decided_by`` (rule, llm or guard), ``outcome`` and the times. Sinks receive each entry after it is written:
:class:`HubSink` publishes into an in-process :class:`~fleetmind.events.EventHub`, :class:`HttpEventSink` posts to
Mission Control's ``POST /api/events`` with an operator key (a separate supervisor process). A failing sink is
logged, never fatal: the file is the record.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from fleetmind.events import EventHub
from fleetmind.supervisor import supervisor_headers

log = logging.getLogger(__name__)
Sink = Callable[[dict[str, Any]], None]
EVENT_KIND = "supervisor.heal"


def audit_path(state_dir: Path) -> Path:
    return state_dir / "supervisor" / "audit.jsonl"


def _message(entry: dict[str, Any]) -> str:
    return (
        f"{entry.get('job')}: {entry.get('fault', {}).get('kind')} → {entry.get('action')} "
        f"({entry.get('decided_by')}): {entry.get('outcome')}"
    )


def _level(entry: dict[str, Any]) -> str:
    return {"healed": "info", "applied": "info"}.get(str(entry.get("outcome")), "warning")


class HubSink:
    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    def __call__(self, entry: dict[str, Any]) -> None:
        self.hub.publish_data(EVENT_KIND, _message(entry), level=_level(entry), data=entry)  # type: ignore[arg-type]


class HttpEventSink:
    """Posts each entry to Mission Control (``url`` = ``http://host:port/api/events``) with ``headers``: an operator
    key (:meth:`with_key`) or the stack's service credential, speaking as ``supervisor`` (:meth:`as_service`)."""

    def __init__(self, url: str, headers: dict[str, str], *, timeout_s: float = 3.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"events url must be http(s)://..., got {url!r}")
        self.url, self.headers, self.timeout_s = url, headers, timeout_s
        self._failing = False

    @classmethod
    def with_key(cls, url: str, api_key: str) -> HttpEventSink:
        return cls(url, {"Authorization": f"Bearer {api_key}"})

    @classmethod
    def as_service(cls, url: str, secret: str) -> HttpEventSink:
        return cls(url, supervisor_headers(secret))

    def __call__(self, entry: dict[str, Any]) -> None:
        body = {"kind": EVENT_KIND, "message": _message(entry)[:4000], "level": _level(entry), "data": entry}
        try:
            response = httpx.post(self.url, json=body, headers=self.headers, timeout=self.timeout_s)
            response.raise_for_status()
            self._failing = False
        except httpx.HTTPError as exc:
            if not self._failing:
                log.warning("Mission Control did not take a supervisor event at %s: %s", self.url, exc)
            self._failing = True


class Audit:
    def __init__(self, state_dir: Path, *, sinks: list[Sink] | None = None) -> None:
        self.path = audit_path(state_dir)
        self.sinks = list(sinks or [])
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {"ts": time.time(), **entry}
        line = json.dumps(entry, default=str, sort_keys=True)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        log.info("supervisor audit: %s", _message(entry))
        for sink in self.sinks:
            try:
                sink(entry)
            except Exception:
                log.exception("supervisor audit sink failed")
        return entry


def read_audit(state_dir: Path) -> Iterator[dict[str, Any]]:
    """The audit's entries, oldest first (lines that do not parse are skipped)."""
    path = audit_path(state_dir)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                yield value
