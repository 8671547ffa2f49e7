"""Mission Control's FastAPI application, built around an agent runtime by :func:`create_app`.

The app's lifespan starts the runtime's pipeline and stops it on shutdown, so ``uvicorn`` owns the process's
signals and the pipeline ends cleanly after the last response. Tests that drive the app in-process can start
the runtime themselves; ``start()`` is idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import fleetmind
from fleetmind.agent.runtime import AgentRuntime
from fleetmind.config import Settings
from fleetmind.security import KeyStore
from fleetmind.web.errors import install_error_handlers
from fleetmind.web.routes import chat, health, home, state, status


def create_app(settings: Settings, runtime: AgentRuntime) -> FastAPI:
    """The Mission Control app for ``runtime``; API keys come from ``settings.keys_file`` and the env."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="fleetmind agent", version=fleetmind.__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.key_store = KeyStore(settings.keys_file)
    install_error_handlers(app)
    for module in (health, chat, status, state, home):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=Path(str(files("fleetmind.web").joinpath("static")))), name="static")
    return app
