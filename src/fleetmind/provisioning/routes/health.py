"""``GET /health`` for checks and ``GET /metrics`` for Prometheus (no key: counts only, never host names)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fleetmind.provisioning.deps import MetricsDep
from fleetmind.provisioning.metrics import CONTENT_TYPE
from fleetmind.provisioning.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
async def health(request: Request) -> HealthResponse:
    runner = request.app.state.runner
    return HealthResponse(queued=runner.queued, running=len(runner.running))


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "Prometheus text."}},
)
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE)
