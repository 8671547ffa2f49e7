"""The provisioning API's FastAPI app: :func:`create_app` wires settings, store, inventory, runner and routes.

``POST /api/ready-for-provisioning`` is for nodes (enrolment token), ``/api/provisioning/*`` for people and
programs (API key), ``/health`` and ``/metrics`` for checks, ``/openapi.json`` and ``/docs`` describe it all.
The lifespan starts the job runner (recovering what a previous process left) and stops it. Live job events go
to any sink added with ``app.state.events.add_sink(callable)``, and to Mission Control's stream when
``FLEETMIND_PROVISION_EVENTS_URL``/``_KEY`` are set (:mod:`fleetmind.provisioning.forward`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import fleetmind
from fleetmind.config import get_settings
from fleetmind.http import install
from fleetmind.provisioning.errors import ConfigurationError
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
    app.include_router(callhome.router)
    app.include_router(status.router)
    app.include_router(health.router)
    install(app, max_body=settings.max_body_bytes, validation_status=422, throttle=True)
    return app
