"""Wiring the supervisor from its settings: the cluster client, the reflector, the audit's sinks, the loop.

This is the one place that builds a :class:`~fleetmind.supervisor.loop.Supervisor` for a real run (``fleetmind
supervise``, ``python -m fleetmind.supervisor``, the ``supervisor`` job of ``fleetmind up``).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from fleetmind.cluster.client import ClusterClient, ClusterError
from fleetmind.supervisor.actions import Decision
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
    if settings.events_url and settings.events_key:
        sinks.append(HttpEventSink(settings.events_url, settings.events_key.get_secret_value()))
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
    )


def run_forever(settings: SupervisorSettings) -> None:
    """Run the loop until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    supervisor = build(settings)
    try:
        supervisor.run(stop)
    finally:
        supervisor.client.close()
