"""Wiring the supervisor from its settings: the cluster client, the reflector, the audit's sinks, the loop.

This is the one place that builds a :class:`~fleetmind.supervisor.loop.Supervisor` for a real run (``fleetmind
supervise``, ``python -m fleetmind.supervisor``, the ``supervisor`` job of ``fleetmind up``).
"""

from __future__ import annotations

import http.server
import json
import logging
import signal
import threading
import time
from typing import Any

from fleetmind.cluster.client import ClusterClient, ClusterError
from fleetmind.security.service import load_secret
from fleetmind.supervisor.actions import Decision
from fleetmind.supervisor.approvals import HttpApprovals
from fleetmind.supervisor.audit import Audit, HttpEventSink, Sink
from fleetmind.supervisor.detect import Detector
from fleetmind.supervisor.guard import Guard
from fleetmind.supervisor.loop import Options, Supervisor
from fleetmind.supervisor.reflect import Reflector, load_variant
from fleetmind.supervisor.settings import SupervisorSettings

log = logging.getLogger(__name__)


class DiscoveringReflector(Reflector):
    """A reflector that finds its llama-server in the registry (the first healthy expert) at each decision."""

    def __init__(self, client: ClusterClient, **kwargs: Any) -> None:
        super().__init__("http://unset.invalid", **kwargs)
        self.client = client

    def decide(self, diagnostics: dict[str, Any]) -> Decision:
        try:
            experts = self.client.services_by_tag("expert")
        except ClusterError as exc:
            return Decision("error", f"no expert to reflect with: {exc}"[:300], "llm")
        if not experts:
            return Decision("error", "no healthy expert to reflect with", "llm")
        self.url = experts[0].url
        return super().decide(diagnostics)


def build(settings: SupervisorSettings, client: ClusterClient | None = None) -> Supervisor:
    client = client or ClusterClient()
    variant = load_variant(settings.state_dir)
    key = settings.llm_key.get_secret_value() if settings.llm_key else None
    reflector: Reflector = (
        Reflector(settings.llm_url, variant=variant, api_key=key)
        if settings.llm_url
        else DiscoveringReflector(client, variant=variant, api_key=key)
    )
    sinks: list[Sink] = []
    approvals: HttpApprovals | None = None
    secret = load_secret(settings.state_dir)
    if settings.events_url and secret:
        # the same Mission Control takes its risky actions for a person to decide (POST /api/approvals)
        approvals = HttpApprovals(settings.events_url.rsplit("/api/", 1)[0] + "/api/approvals", secret)
    if settings.events_url and settings.events_key:
        sinks.append(HttpEventSink.with_key(settings.events_url, settings.events_key.get_secret_value()))
    elif settings.events_url and secret:
        # in the stack: Mission Control takes the service credential, the supervisor speaking for itself
        sinks.append(HttpEventSink.as_service(settings.events_url, secret))
    options = Options(
        state_dir=settings.state_dir,
        logs_dir=settings.task_logs,
        fallback_model=settings.fallback_model,
        approval_level=settings.approval_level,
        max_memory_mb=settings.max_memory_mb,
        interval_s=settings.interval_s,
    )
    return Supervisor(
        client,
        options,
        detector=Detector(
            client, unhealthy_after_s=settings.unhealthy_after_s, ignore_jobs=tuple(settings.ignore_jobs)
        ),
        guard=Guard(cooldown_s=settings.cooldown_s, budget=settings.budget, storm_window_s=settings.storm_window_s),
        reflector=reflector,
        audit=Audit(settings.state_dir, sinks=sinks),
        approvals=approvals,
    )


class _Health(http.server.BaseHTTPRequestHandler):
    supervisor: Supervisor
    stale_s: float

    def do_GET(self) -> None:
        if self.path != "/health":
            self._send(404, {"error": "not found"})
            return
        age = time.monotonic() - self.supervisor.last_tick
        ok = age <= self.stale_s
        self._send(200 if ok else 503, {"status": "ok" if ok else "stale", "last_tick_age_s": round(age, 1)})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:  # a check every few seconds is not worth a log line
        return


def serve_health(supervisor: Supervisor, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """``GET /health``: 200 while the loop has looked at the cluster recently, else 503 (nothing else is served)."""
    handler = type("Health", (_Health,), {"supervisor": supervisor, "stale_s": supervisor.options.interval_s * 3 + 60})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="supervisor-health", daemon=True).start()
    return server


def run_forever(settings: SupervisorSettings, *, health: tuple[str, int] | None = None) -> None:
    """Run the loop until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    supervisor = build(settings)
    server = serve_health(supervisor, *health) if health else None
    try:
        supervisor.run(stop)
    finally:
        if server is not None:
            server.shutdown()
        supervisor.client.close()
