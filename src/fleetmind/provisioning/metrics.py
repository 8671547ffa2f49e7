"""Prometheus metrics of the provisioning API, in a registry of its own (so two apps in one process never
clash).

Labels are fixed, small sets (results, states); a host name is never a label, so a hostile or numerous fleet
cannot blow up the series count."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.call_homes = Counter(
            "fleetmind_provision_call_homes",
            "Call-homes answered, by result (accepted, unauthorized, busy, invalid, error).",
            ["result"],
            registry=self.registry,
        )
        self.jobs_finished = Counter(
            "fleetmind_provision_jobs_finished",
            "Provisioning jobs that ended, by final state.",
            ["state"],
            registry=self.registry,
        )
        self.jobs_running = Gauge(
            "fleetmind_provision_jobs_running", "Playbook runs in progress.", registry=self.registry
        )
        self.jobs_queued = Gauge(
            "fleetmind_provision_jobs_queued", "Jobs waiting for a free runner.", registry=self.registry
        )
        self.job_seconds = Histogram(
            "fleetmind_provision_job_seconds",
            "Wall time of one playbook run.",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
