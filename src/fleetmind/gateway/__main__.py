"""``python -m fleetmind.gateway [--host H] [--port P]``: serve the OpenAI-compatible gateway with uvicorn.

uvicorn handles SIGINT and SIGTERM: it stops accepting, lets open requests finish for a few seconds and runs
the app's lifespan shutdown (which closes the connections to the agent). It then re-raises the signal; the
handler installed here turns that into exit status 0, because a requested stop is a clean one.
"""

from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType

import uvicorn

from fleetmind.config import get_settings
from fleetmind.gateway.app import create_app
from fleetmind.gateway.settings import get_gateway_settings

# long streams must not hold a shutdown hostage; their clients get a closed connection
GRACEFUL_SHUTDOWN_S = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    settings = get_gateway_settings()
    parser = argparse.ArgumentParser(
        prog="python -m fleetmind.gateway",
        description="Serve fleetmind's OpenAI-compatible API (/v1/chat/completions, /v1/models).",
        epilog="Other settings come from FLEETMIND_GATEWAY_* variables (agent_url, request_timeout_s, ...).",
    )
    parser.add_argument("--host", default=settings.host, help=f"listen address ({settings.host})")
    parser.add_argument("--port", type=int, default=settings.port, help=f"listen port ({settings.port})")
    parser.add_argument("--log-level", default=None, help="log level (FLEETMIND_LOG_LEVEL)")
    return parser.parse_args(argv)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    level = (args.log_level or get_settings().log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_gateway_settings().model_copy(update={"host": args.host, "port": args.port})
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    # uvicorn replaces these while it serves and restores them before it re-raises the signal it stopped for
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
