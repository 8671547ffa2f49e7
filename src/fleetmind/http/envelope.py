"""The one error envelope of fleetmind's HTTP services, and the handlers every service shares.

Every failure is answered as ``{"error": {"message", "type", "param", "code"}}`` (OpenAI's shape). Each service
keeps its own exception classes and validation messages; what is the same everywhere lives here: the envelope,
Starlette's 404/405/413/415 and a crash (500, the traceback to the log, nothing of it to the client). The handlers
also leave the error code on ``request.state.error_code`` for a metrics middleware to count.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The one error envelope, as every service's OpenAPI schema documents it."""

    error: ErrorDetail


INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"

HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def error_body(
    message: str, *, type_: str = INVALID_REQUEST, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method, body too large) in the envelope."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    type_ = SERVER_ERROR if exc.status_code >= 500 else INVALID_REQUEST
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    request.state.error_code = code
    body = error_body(message, type_=type_, code=code)
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    """A crash: the traceback goes to our log; the client learns only that it was our fault."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    code = request.state.error_code = "internal_error"
    body = error_body("The server had an error while processing your request.", type_=SERVER_ERROR, code=code)
    return JSONResponse(body, status_code=500)
