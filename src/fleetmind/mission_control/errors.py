"""Errors of Mission Control's API and the one envelope every failure is answered with.

Every error body is ``{"error": {"message", "type", "param", "code"}}``, the shape the OpenAI-compatible
gateway uses too, so a client needs one parser. Messages say what was wrong with the request and never echo
secrets, file paths or internals: authentication failures in particular do not say whether a key exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleetmind.http.envelope import ErrorResponse, error_body, http_exception_handler, unhandled_handler


class WebError(Exception):
    """Base class of this package's errors."""


class ApiError(WebError):
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
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.type = type
        self.param = param
        self.headers = headers


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


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic model's JSON schema with its ``$defs`` written in place, for a body a route documents by hand
    (``openapi_extra``): a ``#/$defs/...`` reference would point into the OpenAPI document, not this schema."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def invalid_body(errors: Sequence[Any]) -> ApiError:
    """The error for a body that failed validation: 400 when it is not JSON at all (a bad request), 422 naming the
    first wrong field when it is JSON of the wrong shape (unprocessable)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return ApiError(400, "the request body is not valid JSON", code="invalid_json")
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg", "invalid request"))
    return ApiError(422, message, code="invalid_request", param=param)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.message, type_=exc.type, code=exc.code, param=exc.param),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return await _api_error(request, invalid_body(exc.errors()))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Starlette's and FastAPI's own (an unknown route, a body that is not UTF-8) and a crash: the same envelope
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(Exception, unhandled_handler)
