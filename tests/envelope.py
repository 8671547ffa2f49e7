"""The one error envelope, as a check every app's tests share: schemathesis runs it on each answer it gets.

Every failure of every fleetmind app is ``{"error": {"message", "type", "param", "code"}}`` and nothing else
(:mod:`fleetmind.http.envelope`): a 404 for an unknown path, a 405, a validation error, a refused key, a crash.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis import Case
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response

FIELDS = {"message", "type", "param", "code"}


def envelope_problem(status: int, body: bytes, content_type: str) -> str | None:
    """Why an error answer is not the envelope, or None when it is (or the answer is no error)."""
    if status < 400:
        return None
    if not content_type.startswith("application/json"):
        return f"{status} answered as {content_type or 'no content type'}, not the JSON envelope"
    try:
        data: Any = json.loads(body)
    except ValueError:
        return f"{status} body is not JSON"
    if not isinstance(data, dict) or set(data) != {"error"} or not isinstance(data["error"], dict):
        return f"{status} body is not {{'error': {{...}}}}: {str(data)[:200]}"
    error = data["error"]
    if set(error) != FIELDS:
        return f"{status} error has fields {sorted(error)}, not {sorted(FIELDS)}"
    if not isinstance(error["message"], str) or not error["message"] or not isinstance(error["type"], str):
        return f"{status} error lacks a message or a type"
    return None


@schemathesis.check
def error_envelope(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx/5xx answer is the one envelope."""
    content_type = next((v[0] for k, v in response.headers.items() if k.lower() == "content-type" and v), "")
    problem = envelope_problem(response.status_code, response.content, content_type)
    if problem is not None:
        raise AssertionError(f"{case.operation.label}: {problem}")
    return None
