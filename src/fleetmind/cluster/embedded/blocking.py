"""Query helpers both embedded APIs share: HashiCorp-style boolean flags and blocking queries
(``?index&wait``)."""

from __future__ import annotations

from fastapi import Request

from fleetmind.cluster.durations import parse_duration
from fleetmind.cluster.embedded.index import IndexClock

MAX_WAIT_S = 600.0
DEFAULT_WAIT_S = 300.0


def flag(request: Request, name: str) -> bool:
    """A boolean query flag as HashiCorp reads it: present (``?passing``) or true-ish (``=1``, ``=true``)."""
    if name not in request.query_params:
        return False
    return request.query_params[name].lower() not in ("0", "false", "no")


async def block(request: Request, clock: IndexClock) -> int:
    """Honour a blocking query: wait until the index passes ``?index`` (up to ``?wait``); return the index."""
    raw = request.query_params.get("index")
    if not raw:
        return clock.index
    try:
        after = int(raw)
        wait = parse_duration(request.query_params["wait"]) / 1e9 if "wait" in request.query_params else DEFAULT_WAIT_S
    except ValueError:
        return clock.index
    return await clock.wait_past(after, min(wait, MAX_WAIT_S))
