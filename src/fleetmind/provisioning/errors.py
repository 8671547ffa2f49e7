"""The provisioning API's exceptions and the one error envelope every failure leaves in.

Every path out of the app -- our own errors, FastAPI's validation errors, Starlette's 404/405/413 and any
crash -- is answered as ``{"error": {"message", "type", "param", "code"}}``, the shape the gateway uses too.
Validation errors are 422 with ``param`` naming the field (``facts.disks[0].name``) and a message a person can
act on."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleetmind.http.envelope import (
    INVALID_REQUEST,
    SERVER_ERROR,
    error_body,
    http_exception_handler,
    unhandled_handler,
)

log = logging.getLogger(__name__)


class ProvisioningError(Exception):
    """Base class: an error with the HTTP status and envelope fields it is answered with."""

    status_code = 500
    type = SERVER_ERROR
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status_code == 401 else None
        body = error_body(self.message, type_=self.type, param=self.param, code=self.code)
        return JSONResponse(body, status_code=self.status_code, headers=headers)


class ConfigurationError(ProvisioningError, ValueError):
    """A setting that cannot work (a missing playbook, say); raised before the service starts."""


class AuthenticationError(ProvisioningError):
    status_code = 401
    type = INVALID_REQUEST
    code = "unauthorized"


class PermissionDeniedError(ProvisioningError):
    """A valid API key whose scope is below ``operator`` (a chat key): it may not steer provisioning."""

    status_code = 403
    type = "permission_error"
    code = "insufficient_scope"


class InvalidNodeError(ProvisioningError):
    """A well-formed request we still refuse (a node named like an inventory group, say)."""

    status_code = 422
    type = INVALID_REQUEST
    code = "invalid_value"


class NotFoundError(ProvisioningError):
    status_code = 404
    type = INVALID_REQUEST
    code = "not_found"


class ConflictError(ProvisioningError):
    status_code = 409
    type = INVALID_REQUEST
    code = "conflict"


class NodeBusyError(ConflictError):
    code = "job_in_progress"

    def __init__(self, hostname: str, job_id: str) -> None:
        super().__init__(f"node {hostname!r} already has job {job_id} queued or running; call again when it ends")
        self.job_id = job_id


class NodeIdentityError(ConflictError):
    code = "mac_mismatch"


class InventoryError(ProvisioningError):
    """The inventory cannot be read or written; we refuse to overwrite a file we could not parse."""

    status_code = 503
    code = "inventory_unavailable"


def field_path(loc: Sequence[int | str]) -> str | None:
    """``("body", "facts", "disks", 0, "name")`` -> ``"facts.disks[0].name"``; ``None`` for the body."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    param = field_path(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        message = "The request body is not valid JSON."
    elif first.get("type") == "missing":
        message = f"Missing required field '{param}'."
    else:
        # pydantic's message, never the offending value: it may be hostile and it is echoed into logs
        message = f"Invalid value for '{param}': {first.get('msg', 'invalid')}" if param else str(first.get("msg"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return JSONResponse(error_body(message, param=param, code="invalid_value"), status_code=422)


async def _provisioning_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProvisioningError)
    if exc.status_code >= 500:
        log.warning("%s %s -> %d %s", request.method, request.url.path, exc.status_code, exc.message)
    return exc.response()


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _validation_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure to the one error envelope."""
    app.add_exception_handler(ProvisioningError, _provisioning_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(Exception, unhandled_handler)
