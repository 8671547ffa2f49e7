"""Logging for the agent process: one JSON object per line on stderr, with each record's ``extra=`` fields.

fleetmind code logs through the stdlib ``logging`` module and passes structured fields with ``extra=``
(``event``, ``request_id``, ``expert`` ...). pipecat logs through loguru; its records are forwarded into the
same stream under the ``pipecat`` logger, so one process writes one log format that the orchestrator's log
capture can parse.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

# Attributes every LogRecord has; whatever else a record carries came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
# uvicorn adds an ANSI-coloured copy of its message; the plain one is enough.
_SKIP = _STANDARD | {"color_message"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _SKIP and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _forward_loguru(message: Any) -> None:
    record = message.record
    logging.getLogger("pipecat").log(
        record["level"].no, record["message"], extra={"source": f"{record['name']}:{record['line']}"}
    )


def setup_logging(level: str = "INFO", *, pipecat_level: str = "WARNING") -> None:
    """Send fleetmind's and pipecat's logs to stderr as JSON lines; ``pipecat_level`` quiets pipecat."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log is one line per request; keep it, in the same format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

    from loguru import logger as loguru_logger  # pipecat's logger; imported here so plain imports stay quiet

    loguru_logger.remove()
    loguru_logger.add(_forward_loguru, level=pipecat_level.upper(), format="{message}")
