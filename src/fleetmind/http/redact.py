"""Secrets never reach a log: query strings, ``token=``/``key=`` values, bearer credentials and API keys are
redacted from every log record.

:class:`RedactFilter` is a :class:`logging.Filter` that rewrites a record in place (its message and its
arguments, keeping the argument tuple's shape so that uvicorn's access formatter still unpacks it).
:func:`install_redaction` applies it to every record the process creates, whatever logger and handler it goes
to (uvicorn's access and error logs, httpx's request lines, ours), by wrapping the log record factory once;
every server installs it through :func:`fleetmind.http.install`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

REDACTED = "[redacted]"

# A path or URL with a query string: the query goes, whatever it holds.
_QUERY = re.compile(r"""(?P<pre>(?:\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#"'<>]+)?/[^\s?#"'<>]*)\?[^\s#"'<>]+""")
# name=value pairs whose name says secret (token=, api_key=, access_token=, key=, password= ...).
_PAIR = re.compile(r"""(?i)\b((?:[\w-]*[_-])?(?:token|key|secret|password|passwd|signature|sig))=([^&\s"'<>;,]+)""")
# Header-shaped secrets: X-Nomad-Token: ..., X-Consul-Token: ..., X-Api-Key: ...
_HEADER = re.compile(r"""(?i)\b(x-(?:nomad|consul)-token|x-api-key)(["']?\s*[:=]\s*["']?)[^\s"',}]+""")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")
# fleetmind API keys (fm-...) and the WebSocket subprotocol that carries one.
_KEY = re.compile(r"\b(fm-|fleetmind\.key\.)[A-Za-z0-9_-]{8,}")


def redact(text: str) -> str:
    """``text`` with every query string and secret-looking value replaced by ``[redacted]``."""
    if not any(c in text for c in "?=:") and "fm-" not in text and "fleetmind.key." not in text:
        return text
    text = _QUERY.sub(rf"\g<pre>?{REDACTED}", text)
    text = _PAIR.sub(rf"\1={REDACTED}", text)
    text = _HEADER.sub(rf"\1\2{REDACTED}", text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return _KEY.sub(rf"\1{REDACTED}", text)


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (int, float, bytes)):
        return value
    text = str(value)  # a URL object, an exception ...: redact what %s would print
    clean = redact(text)
    return value if clean == text else clean


class RedactFilter(logging.Filter):
    """Rewrite a record so that neither its message nor its arguments hold a query string or a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.args:
            if isinstance(record.msg, str):
                record.msg = redact(record.msg)
            return True
        # The template's %-placeholders must survive: redact the arguments, then check the whole line.
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        try:
            line = record.getMessage()
        except (TypeError, ValueError, KeyError):
            return True  # a broken template: logging reports it itself
        clean = redact(line)
        if clean != line:  # the secret was in the template, or split over it and an argument
            record.msg, record.args = clean, None
        return True


_FILTER = RedactFilter()


def install_redaction() -> None:
    """Redact every log record this process creates from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "fleetmind_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _FILTER.filter(record)
        return record

    redacting: Callable[..., logging.LogRecord] = factory
    redacting.fleetmind_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting)
