"""The agent process's composition root: ``python -m fleetmind.apps.agent_process``.

:func:`create_app` builds, in one place, what the process runs: the event hub (fed by every log record that
carries an ``event`` field, and by other processes through ``POST /api/events``), one approval broker and one tool
runner (both report into the hub, and the agent's workflow uses the same pair), and one HTTP app on which the
agent's routes (:mod:`fleetmind.agent.server`), Mission Control's (:func:`fleetmind.mission_control.app.mount`) and
the voice page sit side by side. The lifespan starts the runtime's pipeline and stops it on shutdown, so ``uvicorn``
owns the process's signals; tests that drive the app in-process start the runtime themselves (``start()`` is
idempotent) and call :func:`detach_logging` when done.

:func:`main` reads the shared settings (``FLEETMIND_STATE_DIR`` for API keys), the agent's own
(``FLEETMIND_AGENT_*``) and the cluster addresses (``CONSUL_HTTP_ADDR``, ``NOMAD_ADDR``) from the environment its
job gives it, and serves with uvicorn. With ``--gateway-port`` the same process also serves the OpenAI-compatible
gateway (:func:`fleetmind.gateway.app.create_app`, its settings from ``FLEETMIND_GATEWAY_*``) on that port, handing
each checked request to this agent directly (:func:`gateway_link`): what `fleetmind up` runs on one machine, one
process and one hop fewer per request and per token. SIGINT/SIGTERM stop every server gracefully (open answers get
a few seconds), then the pipeline ends and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI

import fleetmind
from fleetmind.agent.logs import setup_logging
from fleetmind.agent.server import AgentServices, answer
from fleetmind.agent.server import router as agent_router
from fleetmind.config import Settings, get_settings
from fleetmind.contracts.protocol import AgentEvent, AgentRequest
from fleetmind.events import EventHub, EventLogHandler
from fleetmind.gateway.errors import AgentUnavailableError
from fleetmind.gateway.upstream import AgentLink
from fleetmind.http import install
from fleetmind.mission_control import app as mission_control
from fleetmind.security import KeyStore
from fleetmind.security.service import service_secret
from fleetmind.stack_settings import default

if TYPE_CHECKING:
    from fleetmind.agent.runtime import AgentRuntime
    from fleetmind.tools.approvals import ApprovalBroker
    from fleetmind.tools.runner import ToolRunner

log = logging.getLogger("fleetmind.agent")

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
    """The agent process's app around ``runtime``; API keys come from ``settings.keys_file`` and the env.

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
    if runner.context.expert_directory is None:  # the planner/orchestrator/swarm ask the agent's own experts
        runner.context.expert_directory = runtime.directory.urls
    if runtime.tools is None:  # the workflow's call_tool and ask_approval steps use them (runtime not started yet)
        runtime.tools, runtime.approvals = runner, broker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await app.state.tool_runs.aclose()
            await runtime.stop()
            detach_logging(app)

    app = FastAPI(title="fleetmind agent", version=fleetmind.__version__, lifespan=lifespan)
    key_store = KeyStore(settings.keys_file)
    # the gateway shows it on /api/agent/chat (security/service.py); made on first start if the stack has none
    secret = service_secret(settings.state_dir)
    app.state.settings = settings
    app.state.events_log_handler = log_handler
    app.state.key_store = key_store
    app.state.service_secret = secret
    app.state.agent = AgentServices(runtime=runtime, hub=hub)
    install(app, max_body=settings.max_body_bytes, validation_status=422, throttle=True)
    app.include_router(agent_router)
    mission_control.mount(app, settings, runtime=runtime, hub=hub, approvals=broker, tools=runner, key_store=key_store)
    # the mic page and its socket; speech models are loaded on first use, so an agent nobody talks to pays nothing
    from fleetmind.voice.web import router as voice_router

    app.include_router(voice_router)
    return app


def gateway_link(services: AgentServices) -> AgentLink:
    """How a gateway in this process hands a request to this agent: what ``POST /api/agent/chat`` does for the
    gateway's HTTP call (the checked key owns the request), as events instead of lines."""

    async def link(request: AgentRequest, key_id: str) -> AsyncIterator[AgentEvent]:
        if not services.runtime.running:
            raise AgentUnavailableError("The agent is not ready: its pipeline is not running.")
        events = answer(services.runtime, request.model_copy(update={"owner": key_id}), services.hub)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    return link


def create_gateway(app: FastAPI, host: str, port: int) -> FastAPI:
    """The gateway's app for this process's agent ``app``: the same key file, chats through :func:`gateway_link`."""
    from fleetmind.gateway.app import create_app as create_gateway_app
    from fleetmind.gateway.settings import get_gateway_settings

    settings = get_gateway_settings().model_copy(update={"host": host, "port": port})
    return create_gateway_app(
        settings,
        key_store=app.state.key_store,
        service_secret=app.state.service_secret,
        link=gateway_link(app.state.agent),
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal capture: :func:`serve` stops every server of the process on one signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(servers: Sequence[uvicorn.Server]) -> None:
    """Serve until SIGINT/SIGTERM (a second SIGINT forces), or until any server ends (its startup failed)."""
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        for server in servers:
            if server.should_exit and sig == signal.SIGINT:
                server.force_exit = True
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def detach_logging(app: FastAPI) -> None:
    """Stop feeding this app's hub from the process's log records (the app is done)."""
    logging.getLogger().removeHandler(app.state.events_log_handler)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fleetmind.apps.agent_process",
        description="Run the fleetmind agent: its pipecat pipeline and Mission Control's API.",
    )
    parser.add_argument("--host", default=default("host"), help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=default("ui_port"), help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--gateway-port",
        type=int,
        default=None,
        help="also serve the OpenAI-compatible gateway on this port, in this process (default: none)",
    )
    parser.add_argument("--log-level", default=None, help="log level (default: FLEETMIND_LOG_LEVEL or INFO)")
    parser.add_argument(
        "--graceful-timeout",
        type=int,
        default=5,
        help="seconds open answers get to finish on shutdown (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    level = (args.log_level or settings.log_level).upper()
    setup_logging(level)
    # pipecat is imported only now, so even its import-time banner goes through the logging set up above.
    from fleetmind.agent.runtime import AgentRuntime
    from fleetmind.agent.settings import get_agent_settings

    try:
        agent_settings = get_agent_settings()
        runtime = AgentRuntime(settings=agent_settings)
    except ValueError as exc:
        log.error("bad agent configuration: %s", exc, extra={"event": "config_error"})
        return 2

    app = create_app(settings, runtime)
    servers = [
        _Server(
            uvicorn.Config(
                app,
                host=args.host,
                port=args.port,
                log_config=None,  # keep the JSON logging set up above
                log_level=level.lower(),
                timeout_graceful_shutdown=args.graceful_timeout or None,
            )
        )
    ]
    if args.gateway_port is not None:
        gateway = create_gateway(app, args.host, args.gateway_port)
        config = uvicorn.Config(
            gateway,
            host=args.host,
            port=args.gateway_port,
            log_config=None,
            log_level=level.lower(),
            timeout_graceful_shutdown=args.graceful_timeout or None,
        )
        servers.append(_Server(config))
    log.info(
        "agent listening on http://%s:%d",
        args.host,
        args.port,
        extra={
            "event": "listening",
            "host": args.host,
            "port": args.port,
            "gateway_port": args.gateway_port,
            "state_dir": str(settings.state_dir),
        },
    )
    if args.gateway_port is not None:
        log.info("gateway (OpenAI API) listening on http://%s:%d/v1", args.host, args.gateway_port)
    asyncio.run(serve(servers))
    # uvicorn returns without raising when startup (the pipeline, a taken port) fails; say so through the exit status
    return 0 if all(server.started for server in servers) else 1


if __name__ == "__main__":
    sys.exit(main())
