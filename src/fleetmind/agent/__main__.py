"""``python -m fleetmind.agent``: the agent process — the pipecat pipeline plus Mission Control's HTTP API.

It reads the shared settings (``FLEETMIND_STATE_DIR`` for API keys), the agent's own (``FLEETMIND_AGENT_*``)
and the cluster addresses (``CONSUL_HTTP_ADDR``, ``NOMAD_ADDR``) from the environment its job gives it, and
serves with uvicorn, which turns SIGINT/SIGTERM into a graceful shutdown: open answers get a few seconds, then
the pipeline ends.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from fleetmind.agent.logs import setup_logging
from fleetmind.agent.settings import get_agent_settings
from fleetmind.config import get_settings

log = logging.getLogger("fleetmind.agent")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fleetmind.agent",
        description="Run the fleetmind agent: its pipecat pipeline and Mission Control's API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
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
    from fleetmind.mission_control.app import create_app

    try:
        agent_settings = get_agent_settings()
        runtime = AgentRuntime(settings=agent_settings)
    except ValueError as exc:
        log.error("bad agent configuration: %s", exc, extra={"event": "config_error"})
        return 2

    app = create_app(settings, runtime)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,  # keep the JSON logging set up above
        log_level=level.lower(),
        timeout_graceful_shutdown=args.graceful_timeout or None,
    )
    log.info(
        "agent listening on http://%s:%d",
        args.host,
        args.port,
        extra={
            "event": "listening",
            "host": args.host,
            "port": args.port,
            "state_dir": str(settings.state_dir),
        },
    )
    server = uvicorn.Server(config)
    server.run()
    # uvicorn exits without raising when startup (the pipeline) fails; say so through the exit status.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
