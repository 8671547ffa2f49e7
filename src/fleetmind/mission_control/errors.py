"""Errors of Mission Control's API and the one envelope every failure is answered with.

Every error body is ``{"error": {"message", "type", "param", "code"}}``, the shape the OpenAI-compatible
gateway uses too, so a client needs one parser. Messages say what was wrong with the request and never echo
secrets, file paths or internals: authentication failures in particular do not say whether a key exists.
"""

from __future__ import annotations

from typing import Any

from fleetmind.http.envelope import ErrorResponse, ServiceError


class ApiError(ServiceError):
    """An HTTP error with a status, a machine code and a message safe to show the caller."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, type=type, param=param, headers=headers)


_DESCRIPTIONS = {
    400: "The body is not valid JSON, not valid Unicode, or not what the route takes",
    401: "Missing or invalid API key",
    403: "The key's scope is too low (or the request is not this key's to decide)",
    404: "No such resource",
    413: "The body is too large",
    422: "The request does not match the schema (the first wrong field is named in param)",
    429: "Too many failed authentications from this address; Retry-After says when to try again",
    503: "The agent pipeline is not running",
}
# every route behind a key: no key or an unknown one (401), too low a scope (403), too many 401s (429)
AUTH = (401, 403, 429)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error statuses a route can answer, each as the error envelope."""
    return {code: {"model": ErrorResponse, "description": _DESCRIPTIONS[code]} for code in sorted(set(codes))}
