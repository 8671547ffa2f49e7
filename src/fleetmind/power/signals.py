"""Demand as the power agent sees it: the gateway's Prometheus metrics turned into queue depth and p95 latency.

The gateway times every ``/v1`` request in the histogram ``fleetmind_gateway_request_seconds`` (from first byte
in to last byte out). Between two scrapes ``dt`` apart, the growth of its ``_sum`` over ``dt`` is the average number
of requests in the system over that time (Little's law: L = λ·W = Δcount/dt · Δsum/Δcount), which is the queue
depth the policy wants; the growth of its buckets gives the p95 of the requests that finished in between (the
upper bound of the bucket the 95th percentile falls in, as Prometheus' ``histogram_quantile`` without
interpolation). The first scrape only sets the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

HISTOGRAM = "fleetmind_gateway_request_seconds"


@dataclass(frozen=True)
class Snapshot:
    at_s: float
    total: float  # requests finished
    seconds: float  # sum of their latencies
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), summed over every label set


@dataclass(frozen=True)
class Demand:
    queue_depth: int
    p95_latency_s: float | None
    requests: int


def parse(text: str, at_s: float) -> Snapshot:
    """Sum the gateway's latency histogram over its labels."""
    total = seconds = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.name == HISTOGRAM + "_count":
                total += sample.value
            elif sample.name == HISTOGRAM + "_sum":
                seconds += sample.value
            elif sample.name == HISTOGRAM + "_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return Snapshot(at_s, total, seconds, tuple(sorted(buckets.items())))


def demand(before: Snapshot, after: Snapshot) -> Demand:
    """Queue depth and p95 between two snapshots (a counter that went back, a restart, counts from zero)."""
    dt = max(after.at_s - before.at_s, 1e-9)
    reset = after.total < before.total
    d_total = after.total - (0.0 if reset else before.total)
    d_seconds = after.seconds - (0.0 if reset else before.seconds)
    queue = math.ceil(max(d_seconds, 0.0) / dt - 1e-9)
    p95: float | None = None
    if d_total > 0:
        old = {} if reset else dict(before.buckets)
        need = 0.95 * d_total
        for le, count in after.buckets:
            if count - old.get(le, 0.0) >= need:
                p95 = le
                break
    return Demand(queue_depth=max(queue, 0), p95_latency_s=p95, requests=int(d_total))


class GatewayMetrics:
    """Scrapes ``url`` and reports the demand since the previous scrape."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._last: Snapshot | None = None

    def read(self, now_s: float) -> Demand | None:
        """The demand since the last call; ``None`` on the first call or when the gateway does not answer."""
        try:
            response = httpx.get(self.url, timeout=self.timeout_s)
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        snap = parse(response.text, now_s)
        last, self._last = self._last, snap
        return None if last is None else demand(last, snap)
