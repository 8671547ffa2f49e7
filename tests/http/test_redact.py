"""Log redaction: query strings, token/key pairs, bearer credentials and fleetmind keys never reach a log line."""

from __future__ import annotations

import logging

import pytest

from fleetmind.http.redact import RedactFilter, redact

KEY = "fm-abcdefghijklmnopqrstuvwxyz012345"


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("GET /voice/ws?token=abc HTTP/1.1", "GET /voice/ws?[redacted] HTTP/1.1"),
        ("http://h:1/p?a=1&key=2", "http://h:1/p?[redacted]"),
        ("token=abc and api_key=def", "token=[redacted] and api_key=[redacted]"),
        ("Authorization: Bearer abcdef123", "Authorization: Bearer [redacted]"),
        ("X-Nomad-Token: 0123456789", "X-Nomad-Token: [redacted]"),
        (f"key {KEY} used", "key fm-[redacted] used"),
        ("Sec-WebSocket-Protocol: fleetmind.key.abcdefghijkl", "Sec-WebSocket-Protocol: fleetmind.key.[redacted]"),
        ("monkey=3 max_tokens=5 x-api-key=9", "monkey=3 max_tokens=5 x-api-key=[redacted]"),
        ("plain words, nothing secret", "plain words, nothing secret"),
    ],
)
def test_redact(text: str, clean: str) -> None:
    assert redact(text) == clean
    assert redact(clean) == clean  # idempotent


def test_filter_keeps_the_access_log_argument_shape() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/v1/models?key={KEY}", "1.1", 200), None,
    )  # fmt: skip
    RedactFilter().filter(record)
    assert isinstance(record.args, tuple) and len(record.args) == 5 and record.args[4] == 200
    assert record.getMessage() == '127.0.0.1:5000 - "GET /v1/models?[redacted] HTTP/1.1" 200'


def test_filter_redacts_a_secret_in_the_template() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, f"calling /a?token={KEY} for %s", ("me",), None)
    RedactFilter().filter(record)
    assert record.getMessage() == "calling /a?[redacted] for me"
