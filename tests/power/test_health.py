"""The power agent's /health: progress while rounds keep coming, 503 once they stop (a hung agent), over a socket."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from fleetmind.power.health import report, serve_health, stale_after


@dataclass
class Progress:
    rounds: int = 0
    last_round_s: float | None = None
    last_error: str | None = None
    started_s: float = 1000.0


def test_a_round_that_failed_is_still_progress_but_no_round_is_not() -> None:
    progress = Progress(rounds=3, last_round_s=1000.0, last_error="orchestrator at http://x did not answer")
    status, body = report(progress, 10.0, now=1000.0 + stale_after(10.0))
    assert status == 200 and body["rounds"] == 3 and "did not answer" in body["last_error"]
    status, body = report(progress, 10.0, now=1000.0 + stale_after(10.0) + 1)
    assert status == 503 and body["status"] == "stalled"
    # before the first round, the start counts
    assert report(Progress(), 10.0, now=1001.0)[0] == 200
    assert stale_after(60.0) == 180.0 and stale_after(1.0) == 60.0


def test_served_on_a_socket() -> None:
    server = serve_health(Progress(rounds=1, started_s=time.time()), 10.0, "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        resp = httpx.get(f"{base}/health", timeout=5)
        assert resp.status_code == 200 and resp.json()["rounds"] == 1
        assert httpx.get(f"{base}/anything", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
