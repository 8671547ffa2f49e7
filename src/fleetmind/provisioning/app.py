"""The provisioning API's FastAPI app: :func:`create_app` wires settings, store, inventory, runner and routes.

``POST /api/ready-for-provisioning`` is for nodes (enrolment token), ``/api/provisioning/*`` for people and
programs (API key), ``/health`` and ``/metrics`` for checks, ``/openapi.json`` and ``/docs`` describe it all.
The lifespan starts the job runner (recovering what a previous process left) and stops it. Live job events go
to any sink added with ``app.state.events.add_sink(callable)``, and to Mission Control's stream when
``FLEETMIND_PROVISION_EVENTS_URL``/``_KEY`` are set (:mod:`fleetmind.provisioning.forward`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import fleetmind
from fleetmind.config import get_settings
from fleetmind.http import install
from fleetmind.http_errors import error_body
from fleetmind.provisioning.errors import ConfigurationError, install_error_handlers
from fleetmind.provisioning.events import EventBus
from fleetmind.provisioning.forward import EventForwarder
from fleetmind.provisioning.inventory import Inventory
from fleetmind.provisioning.metrics import Metrics
from fleetmind.provisioning.routes import callhome, health, status
from fleetmind.provisioning.runner import JobRunner
from fleetmind.provisioning.service import ProvisioningService
from fleetmind.provisioning.settings import ProvisionSettings, get_provision_settings
from fleetmind.provisioning.store import JobStore
from fleetmind.provisioning.todo import TodoWriter
from fleetmind.security import KeyStore
from fleetmind.security.throttle import AuthThrottleMiddleware


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 before anything parses them."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        # no length given (chunked): read up to the limit here, then replay what we read
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(send)
                return
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            error_body(f"Request body larger than {self.limit} bytes.", code="request_too_large")
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(
    settings: ProvisionSettings | None = None,
    *,
    key_store: KeyStore | None = None,
    bus: EventBus | None = None,
) -> FastAPI:
    """Build the app; anything not given comes from the environment (settings, the stack's key file)."""
    settings = settings or get_provision_settings()
    if not settings.playbook_path.is_file():
        raise ConfigurationError(
            f"playbook {settings.playbook_path} does not exist (set FLEETMIND_PROVISION_PLAYBOOK_PATH)"
        )
    key_store = key_store or KeyStore(get_settings().keys_file)
    bus = bus or EventBus()
    metrics = Metrics()
    store = JobStore(settings.db_path)
    inventory = Inventory(settings.inventory_path, roles=settings.roles)
    todo = TodoWriter(settings.todo_path, playbook=settings.playbook_path)
    runner = JobRunner(settings, store, inventory, todo, bus=bus, metrics=metrics)
    service = ProvisioningService(settings, store, inventory, runner)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        forwarder = None
        if settings.events_url and settings.events_key is not None:
            forwarder = EventForwarder(settings.events_url, settings.events_key.get_secret_value())
            forwarder.start()
            bus.add_sink(forwarder)
        app.state.forwarder = forwarder
        await runner.start()
        try:
            yield
        finally:
            await runner.stop()
            if forwarder is not None:
                bus.remove_sink(forwarder)
                await forwarder.close()

    app = FastAPI(
        title="fleetmind provisioning",
        version=fleetmind.__version__,
        summary="New nodes call home; the cluster configures them with Ansible.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.key_store = key_store
    app.state.store = store
    app.state.inventory = inventory
    app.state.runner = runner
    app.state.service = service
    app.state.metrics = metrics
    app.state.events = bus
    install_error_handlers(app)
    app.include_router(callhome.router)
    app.include_router(status.router)
    app.include_router(health.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    install(app, max_body=settings.max_body_bytes)
    app.add_middleware(AuthThrottleMiddleware)  # repeated 401s from one address: 429 for a while
    return app
