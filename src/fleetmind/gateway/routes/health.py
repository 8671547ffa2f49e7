"""``GET /health``: the gateway process is up (no key; the agent's health is the registry's business)."""

from __future__ import annotations

from fastapi import APIRouter

from fleetmind.gateway.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    return HealthResponse()
