"""The gateway's FastAPI app: :func:`create_app` wires settings, key store, discovery and routes together.

``/v1/*`` is the OpenAI surface (keys required, per-key rate limits), ``/health`` is for checks and load
balancers, ``/metrics`` for Prometheus, ``/openapi.json`` and ``/docs`` describe it all. Shared objects live
on ``app.state`` and are closed by the lifespan.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

import fleetmind
from fleetmind.config import get_settings
from fleetmind.gateway.discovery import AgentLocator, Registry
from fleetmind.gateway.limits import RateLimiter
from fleetmind.gateway.metrics import GatewayMetrics, MetricsMiddleware
from fleetmind.gateway.routes import chat, health, models
from fleetmind.gateway.service import ChatService
from fleetmind.gateway.settings import GatewaySettings, get_gateway_settings
from fleetmind.gateway.upstream import AgentLink
from fleetmind.http import install
from fleetmind.security import KeyStore
from fleetmind.security.service import SecretSource


def create_app(
    settings: GatewaySettings | None = None,
    *,
    key_store: KeyStore | None = None,
    registry: Registry | None = None,
    http: httpx.AsyncClient | None = None,
    service_secret: str | None = None,
    link: AgentLink | None = None,
) -> FastAPI:
    """Build the app; anything not given comes from the environment (settings, key file, registry, the service
    secret: ``FLEETMIND_SERVICE_SECRET`` or the state dir's, read when first needed). ``link``: the agent runs in
    this process (:func:`fleetmind.apps.agent_process.main` with ``--gateway-port``), and chats go to it directly."""
    settings = settings or get_gateway_settings()
    key_store = key_store or KeyStore(get_settings().keys_file)
    secret = SecretSource(service_secret)
    locator = AgentLocator(settings, registry=registry, secret=secret)
    service = ChatService(settings, locator, http=http, secret=secret, link=link)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.aclose()

    app = FastAPI(
        title="fleetmind gateway",
        version=fleetmind.__version__,
        summary="OpenAI-compatible API in front of the fleetmind agent.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.key_store = key_store
    app.state.locator = locator
    app.state.chat_service = service
    app.state.started = int(time.time())
    app.state.limiter = RateLimiter(
        requests_per_minute=settings.requests_per_minute, tokens_per_minute=settings.tokens_per_minute
    )
    app.state.metrics = metrics = GatewayMetrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install(app, validation_status=400, throttle=True)
    app.include_router(chat.router, prefix="/v1")
    app.include_router(models.router, prefix="/v1")
    app.include_router(health.router)
    return app
