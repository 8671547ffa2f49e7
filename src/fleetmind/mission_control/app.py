"""Mission Control's FastAPI application, built around an agent runtime by :func:`create_app`.

The app owns what a person at the page watches and steers: the live event hub (fed by every log record that
carries an ``event`` field, and by other processes through ``POST /api/events``), one approval broker and one
tool runner (both report into the hub; the lead hands the same pair to the agent's workflow), the background
tool runs started from the page, and a cached view of the cluster. They live on ``app.state`` (``events``,
``approvals``, ``tools``, ``tool_runs``, ``cluster``). The lifespan starts the runtime's pipeline and stops it
on shutdown, so ``uvicorn`` owns the process's signals; tests that drive the app in-process start the runtime
themselves (``start()`` is idempotent) and call :func:`detach_logging` when done.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import fleetmind
from fleetmind.agent.runtime import AgentRuntime
from fleetmind.config import Settings
from fleetmind.events import EventHub, EventLogHandler
from fleetmind.http import install
from fleetmind.mission_control import routes
from fleetmind.mission_control.cluster import ClusterView
from fleetmind.mission_control.errors import install_error_handlers
from fleetmind.mission_control.toolruns import ToolRuns
from fleetmind.security import KeyStore
from fleetmind.security.service import service_secret
from fleetmind.security.throttle import AuthThrottleMiddleware

if TYPE_CHECKING:
    from fleetmind.tools.approvals import ApprovalBroker
    from fleetmind.tools.runner import ToolRunner

_LEVELS = {"approval_requested": "warning"}


def _hub_sink(hub: EventHub, source: str) -> Any:
    """An ``on_event(kind, payload)`` callback for the broker and the runner that publishes into ``hub``."""

    def sink(kind: str, payload: dict[str, Any]) -> None:
        tool = payload.get("tool")
        message = f"{kind.replace('_', ' ')}: {tool}" if tool else kind.replace("_", " ")
        outcome = payload.get("outcome") or payload.get("status")
        if outcome:
            message += f" → {outcome}"
        hub.publish_data(kind, message, level=_LEVELS.get(kind, "info"), data={**payload, "source": source})  # type: ignore[arg-type]

    return sink


def create_app(
    settings: Settings,
    runtime: AgentRuntime,
    *,
    hub: EventHub | None = None,
    approvals: ApprovalBroker | None = None,
    tools: ToolRunner | None = None,
) -> FastAPI:
    """The Mission Control app for ``runtime``; API keys come from ``settings.keys_file`` and the env.

    Without ``approvals``/``tools`` it makes them (tool settings from ``FLEETMIND_TOOLS_*``, tool state under
    ``<state dir>/tools``); a given broker or runner gets its ``on_event`` pointed at the hub when it has none.
    """
    from fleetmind.tools.approvals import ApprovalBroker, codes_dir_in
    from fleetmind.tools.runner import build_runner
    from fleetmind.tools.settings import get_tools_settings

    hub = hub or EventHub()
    # One pair for the page and the agent: what the agent's workflow asks for waits in this page's approvals.
    tools = tools or runtime.tools
    approvals = approvals or runtime.approvals
    log_handler = EventLogHandler(hub)
    logging.getLogger().addHandler(log_handler)
    if tools is not None and approvals is None:
        approvals = tools.approvals
    if approvals is None:
        tools_settings = get_tools_settings()
        approvals = ApprovalBroker(timeout_s=tools_settings.approval_timeout_s)
        tools = tools or build_runner(
            state_dir=settings.state_dir / "tools", approvals=approvals, settings=tools_settings
        )
    elif tools is None:
        tools = build_runner(state_dir=settings.state_dir / "tools", approvals=approvals)
    if approvals.on_event is None:
        approvals.on_event = _hub_sink(hub, "approvals")
    if approvals.codes_dir is None:  # the second factor for approving one's own request (tools/approvals.py)
        approvals.codes_dir = codes_dir_in(settings.state_dir)
    if tools.on_event is None:
        tools.on_event = _hub_sink(hub, "tools")
    broker, runner = approvals, tools
    if runtime.tools is None:  # the workflow's call_tool and ask_approval steps use them (runtime not started yet)
        runtime.tools, runtime.approvals = runner, broker
    tool_runs = ToolRuns(runner, hub)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await tool_runs.aclose()
            await runtime.stop()
            detach_logging(app)

    app = FastAPI(title="fleetmind agent", version=fleetmind.__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.key_store = KeyStore(settings.keys_file)
    # the gateway shows it on /api/agent/chat (security/service.py); made on first start if the stack has none
    app.state.service_secret = service_secret(settings.state_dir)
    app.state.events = hub
    app.state.events_log_handler = log_handler
    app.state.approvals = broker
    app.state.tools = runner
    app.state.tool_runs = tool_runs
    app.state.cluster = ClusterView()
    install_error_handlers(app)
    install(app, max_body=settings.max_body_bytes)
    r = routes
    routers = (r.health, r.chat, r.status, r.state, r.events, r.approvals, r.tools, r.conversations, r.vision, r.home)
    for module in routers:
        app.include_router(module.router)
    # the mic page and its socket; speech models are loaded on first use, so an agent nobody talks to pays nothing
    from fleetmind.voice.web import router as voice_router

    app.include_router(voice_router)
    app.mount(
        "/static",
        StaticFiles(directory=Path(str(files("fleetmind.mission_control").joinpath("static")))),
        name="static",
    )
    app.add_middleware(AuthThrottleMiddleware)  # repeated 401s from one address: 429 for a while
    return app


def detach_logging(app: FastAPI) -> None:
    """Stop feeding this app's hub from the process's log records (the app is done)."""
    logging.getLogger().removeHandler(app.state.events_log_handler)
