"""``GET /api/status``: uptime, experts and their health, request counts, the latest answers, and the cluster."""

from __future__ import annotations

from fastapi import APIRouter, Request

import fleetmind
from fleetmind.mission_control.cluster import ClusterView
from fleetmind.mission_control.deps import OperatorDep, RuntimeDep
from fleetmind.mission_control.errors import AUTH, error_responses
from fleetmind.mission_control.schemas import ExpertStatus, RecentAnswer, RequestCounts, StatusResponse

router = APIRouter(tags=["status"])


@router.get("/api/status", response_model=StatusResponse, responses=error_responses(*AUTH))
async def status(request: Request, runtime: RuntimeDep, _auth: OperatorDep) -> StatusResponse:
    directory = runtime.directory
    # Asking refreshes the registry view (at most once per discovery TTL): the page shows what routing sees.
    await directory.experts()
    stats = runtime.stats
    view: ClusterView = request.app.state.cluster
    cluster = await view.snapshot()
    experts = [
        ExpertStatus(
            name=h.name,
            url=h.url,
            source=h.source,
            node_class=h.node_class,
            healthy=healthy,
            listed=h.listed,
            served=h.served,
            failed=h.failed,
            consecutive_failures=h.consecutive_failures,
            last_ok=h.last_ok,
            last_failure=h.last_failure,
            last_error=h.last_error,
        )
        for h, healthy in directory.snapshot()
    ]
    return StatusResponse(
        version=fleetmind.__version__,
        running=runtime.running,
        uptime_s=round(stats.uptime_s, 3),
        experts_from=directory.mode,
        discovery_error=directory.discovery_error,
        experts=experts,
        requests=RequestCounts(
            served=stats.served,
            failed=stats.failed,
            in_flight=runtime.in_flight,
            errors=dict(stats.errors),
            by_expert=dict(stats.by_expert),
        ),
        recent=[
            RecentAnswer(id=r.id, outcome=r.outcome, expert=r.expert, at=r.at, completion_tokens=r.completion_tokens)
            for r in stats.recent
        ],
        cluster=cluster,
    )
