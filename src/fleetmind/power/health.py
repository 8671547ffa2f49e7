"""The power agent's health endpoint, for its job's service check: ``GET /health`` on a small stdlib HTTP server.

It answers 200 with the agent's progress (rounds taken, when the last one ended, the last round's error) while
rounds keep coming, and 503 once no round has ended for :func:`stale_after` seconds (a hung agent: Nomad's
``check_restart`` then restarts it). A failed round still counts as progress: an unreachable orchestrator is
the audit log's business, not a reason to restart. Nothing secret is served; any other path is 404.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

log = logging.getLogger("fleetmind.power")


class Progress(Protocol):
    """What the endpoint reads of the agent."""

    rounds: int
    last_round_s: float | None
    last_error: str | None
    started_s: float


def stale_after(interval_s: float) -> float:
    """Seconds without a finished round after which the agent counts as hung (three rounds, at least a minute)."""
    return max(3 * interval_s, 60.0)


def report(progress: Progress, interval_s: float, now: float) -> tuple[int, dict[str, Any]]:
    last = progress.last_round_s if progress.last_round_s is not None else progress.started_s
    healthy = now - last <= stale_after(interval_s)
    body = {
        "status": "ok" if healthy else "stalled",
        "rounds": progress.rounds,
        "last_round_s": progress.last_round_s,
        "last_error": progress.last_error,
    }
    return (200 if healthy else 503), body


def serve_health(progress: Progress, interval_s: float, host: str, port: int) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; returns the server (``server_address`` has the bound port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/health":
                status, body = 404, {"error": "not found"}
            else:
                status, body = report(progress, interval_s, time.time())
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return  # a check every few seconds is not worth a log line

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="power-health", daemon=True).start()
    log.info("power agent health on http://%s:%d/health", host, server.server_address[1])
    return server
