"""A task's logs over Nomad's API: ``GET /v1/client/fs/logs/:alloc_id`` as the embedded orchestrator serves it.

Nomad documents the route in its client API ("Stream Logs": ``task``, ``type`` stdout|stderr, ``follow``, ``offset``,
``origin`` start|end, ``plain``); HashiCorp's OpenAPI description leaves the client routes out, so the contract the
tests check lives in ``tests/cluster/contracts/nomad-client-fs-logs.yaml``. The parameters are read as Nomad's HTTP
handler reads them: a missing task or a type other than stdout/stderr, an origin other than start/end, an offset that
is not an integer, or a ``follow``/``plain`` that Go's ``strconv.ParseBool`` refuses is a 400 with Nomad's message.

The offset counts bytes from the origin and is clamped to the log, as Nomad's ``findClosest`` clamps it (``origin=end
&offset=4096`` of a 100-byte log is all 100 bytes). What is served is the log as it is when the request comes, read
in 64 KiB pieces: ``plain=true`` gives the bytes (``text/plain``), otherwise JSON frames ``{"File", "Offset", "Data"}``
(``Data`` base64, ``Offset`` where the frame's data ends), one after another, as Nomad streams them. The embedded
orchestrator keeps one log per slot (``<job>.<group>[.<index>].<task>.<type>.log``, see :mod:`fleetmind.cluster.
garbage`), so an allocation's log holds what the earlier allocations of its slot wrote too. ``follow=true`` is refused
(400): nothing here tails a log; a reader polls with ``offset`` instead.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from fleetmind.cluster.embedded.views import JobInvalid, NotFound

CHUNK = 64 * 1024  # Nomad's stream frame size
LOG_TYPES = ("stdout", "stderr")
ORIGINS = ("start", "end")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def go_bool(name: str, value: str | None, default: bool = False) -> bool:
    """A query flag read like Go's ``strconv.ParseBool`` (absent or empty: ``default``); raises :class:`JobInvalid`."""
    if value in (None, ""):
        return default
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    why = f'strconv.ParseBool: parsing "{value[:40]}": invalid syntax'
    raise JobInvalid(f"failed to parse {name} field to boolean: {why}")


@dataclass(frozen=True)
class LogQuery:
    task: str
    kind: str  # stdout | stderr
    origin: str  # start | end
    offset: int
    plain: bool
    follow: bool


def parse_log_query(params: Mapping[str, str]) -> LogQuery:
    """The route's query as Nomad's handler reads it; raises :class:`JobInvalid` (400) with Nomad's messages."""
    task = params.get("task") or ""
    if not task:
        raise JobInvalid("must provide task name")
    follow = go_bool("follow", params.get("follow"))
    plain = go_bool("plain", params.get("plain"))
    kind = params.get("type") or ""
    if kind not in LOG_TYPES:
        raise JobInvalid("must provide log type (stdout/stderr)")
    raw = params.get("offset") or "0"
    try:
        offset = int(raw)
    except ValueError:
        raise JobInvalid(f'error parsing offset: strconv.ParseInt: parsing "{raw[:40]}": invalid syntax') from None
    origin = params.get("origin") or "start"
    if origin not in ORIGINS:
        raise JobInvalid("origin must be start or end")
    if follow:
        raise JobInvalid("follow is not supported by the embedded orchestrator: read without it and poll with offset")
    return LogQuery(task, kind, origin, offset, plain, follow)


def window(path: Path, query: LogQuery) -> tuple[int, int]:
    """(first byte, end) of what to serve: the offset from the origin, clamped to the log as it is now."""
    try:
        size = path.stat().st_size
    except OSError:
        raise NotFound(f'log entry for task "{query.task}" and log type "{query.kind}" not found') from None
    start = size - query.offset if query.origin == "end" else query.offset
    return min(max(start, 0), size), size


def read(path: Path, start: int, end: int) -> Iterator[bytes]:
    """The bytes ``[start, end)`` of ``path``, in :data:`CHUNK` pieces (a log cut short meanwhile ends early)."""
    with path.open("rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            piece = fh.read(min(CHUNK, left))
            if not piece:
                return
            left -= len(piece)
            yield piece


def frames(file: str, start: int, pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Nomad's stream frames for ``pieces`` read from ``start`` of ``file`` (its name inside the allocation)."""
    offset = start
    for piece in pieces:
        offset += len(piece)
        yield json.dumps({"File": file, "Offset": offset, "Data": base64.b64encode(piece).decode()}).encode()
