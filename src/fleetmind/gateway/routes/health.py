"""``GET /health`` for checks and load balancers, ``GET /metrics`` for Prometheus.

Neither needs a key by default: /health says only "up", and /metrics holds counts labelled by key *ids* and
12-digit hash prefixes (never a key) and model names, like the provisioning API's /metrics, so the cluster's
Prometheus scrapes every service the same way. ``FLEETMIND_GATEWAY_METRICS_REQUIRE_KEY=true`` asks for a key
where the gateway's port is reachable from outside the cluster.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fleetmind.gateway.deps import Metrics, MetricsKey
from fleetmind.gateway.metrics import CONTENT_TYPE
from fleetmind.gateway.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
)
async def metrics(_: MetricsKey, metrics: Metrics) -> Response:
    """Requests, latencies, tokens and errors per key id and per model, in Prometheus' text format."""
    return Response(metrics.render(), media_type=CONTENT_TYPE)
