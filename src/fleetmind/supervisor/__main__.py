"""``python -m fleetmind.supervisor``: run the supervisor loop (what the ``supervisor`` job runs)."""

from __future__ import annotations

import logging
import sys

from fleetmind.supervisor.service import run_forever
from fleetmind.supervisor.settings import get_supervisor_settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = get_supervisor_settings()
    except ValueError as exc:
        print(f"error: bad FLEETMIND_SUPERVISOR_* setting: {exc}", file=sys.stderr)
        return 2
    run_forever(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
