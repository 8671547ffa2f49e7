"""The one error envelope of fleetmind's HTTP services, the service-error base, and the handlers every app shares.

Every failure is answered as ``{"error": {"message", "type", "param", "code"}}`` (OpenAI's shape). A service's
exceptions subclass :class:`ServiceError` (status, type, code, message, param, headers); :func:`install_errors`
answers them, a request that fails validation (each service says how, through ``on_validation``), Starlette's
404/405/413/415 and a crash (500, the traceback to the log, nothing of it to the client) in the envelope. The
handlers also leave the error code on ``request.state.error_code`` for a metrics middleware to count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
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


class ServiceError(Exception):
    """An HTTP error with its status and the envelope's fields; the message must be safe to show the caller."""

    status_code = 400
    type = INVALID_REQUEST
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self._headers = headers

    @property
    def headers(self) -> dict[str, str] | None:
        """The answer's headers: as given, else ``WWW-Authenticate: Bearer`` on a 401 (RFC 6750)."""
        if self._headers is None and self.status_code == 401:
            return {"WWW-Authenticate": "Bearer"}
        return self._headers

    def envelope(self) -> dict[str, Any]:
        return error_body(self.message, type_=self.type, param=self.param, code=self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.envelope(), status_code=self.status_code, headers=self.headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    request.state.error_code = exc.code  # for a metrics middleware
    if exc.status_code >= 500:
        log.warning("%s %s -> %d %s", request.method, request.url.path, exc.status_code, exc.message)
    return exc.response()


def install_errors(app: FastAPI, *, on_validation: Callable[[RequestValidationError], ServiceError]) -> None:
    """Answer every failure of ``app`` in the envelope; ``on_validation`` turns a failed validation into the
    service's own error (the gateway names OpenAI's parameter, the others the first wrong field)."""

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return await _service_error(request, on_validation(exc))

    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(Exception, unhandled_handler)
