"""``GET /health``: whether the agent pipeline is running; no auth, for the orchestrator's health check."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from fleetmind.mission_control.deps import RuntimeDep
from fleetmind.mission_control.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(runtime: RuntimeDep) -> JSONResponse:
    if runtime.running:
        return JSONResponse(HealthResponse(status="ok").model_dump())
    return JSONResponse(HealthResponse(status="starting").model_dump(), status_code=503)
