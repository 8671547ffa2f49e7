"""``python -m fleetmind.supervisor [--health-host H --health-port P]``: run the supervisor loop (what the
``supervisor`` job runs), with a ``GET /health`` that answers 200 while the loop keeps looking at the cluster."""

from __future__ import annotations

import argparse
import logging
import sys

from fleetmind.supervisor.service import run_forever
from fleetmind.supervisor.settings import get_supervisor_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetmind.supervisor", description=__doc__)
    parser.add_argument("--health-host", default="127.0.0.1", help="Address of the health endpoint.")
    parser.add_argument("--health-port", type=int, default=0, help="Port of the health endpoint (0: none).")
    args = parser.parse_args(argv)
    if not 0 <= args.health_port <= 65535:
        parser.error("--health-port must be 0..65535")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = get_supervisor_settings()
    except ValueError as exc:
        print(f"error: bad FLEETMIND_SUPERVISOR_* setting: {exc}", file=sys.stderr)
        return 2
    run_forever(settings, health=(args.health_host, args.health_port) if args.health_port else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
