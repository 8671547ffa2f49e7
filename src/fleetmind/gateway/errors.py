"""The gateway's exceptions and the one error envelope every failure is answered with.

OpenAI clients parse ``{"error": {"message", "type", "param", "code"}}`` to build their exceptions, so every
path out of the app -- our own errors, FastAPI's validation errors, Starlette's 404/405 and any crash -- goes
through the HTTP kit's handlers (:func:`fleetmind.http.install` with ``validation_status=400``) and leaves in
that shape. Validation errors become 400 as OpenAI answers them, with ``param`` naming the offending field the way
OpenAI spells it (``messages[0].content``): the kit's one mapping (:func:`fleetmind.http.bodies.invalid_body`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fleetmind.http.envelope import INVALID_REQUEST, SERVER_ERROR, ServiceError, error_body

log = logging.getLogger(__name__)


class GatewayError(ServiceError):
    """Base class: an error with the HTTP status and envelope fields it is answered with."""

    status_code = 500
    type = SERVER_ERROR
    code: str | None = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code)


class AuthenticationError(GatewayError):
    status_code = 401
    type = INVALID_REQUEST
    code = "invalid_api_key"


class InvalidRequestError(GatewayError):
    status_code = 400
    type = INVALID_REQUEST
    code = "invalid_request"


class UnsupportedParameterError(InvalidRequestError):
    code = "unsupported_parameter"

    def __init__(self, param: str, message: str | None = None) -> None:
        message = message or f"The parameter '{param}' is not supported by fleetmind yet."
        super().__init__(message, param=param)


class ModelNotFoundError(GatewayError):
    status_code = 404
    type = INVALID_REQUEST
    code = "model_not_found"

    def __init__(self, model: str = "", known: Sequence[str] = (), *, message: str | None = None) -> None:
        listing = ", ".join(known) if known else "(none)"
        super().__init__(message or f"The model '{model}' does not exist. Known models: {listing}.", param="model")
        self.known = list(known)


class RateLimitedError(GatewayError):
    """A key over its request or token budget; ``retry_after_s`` is when the budget allows one more request."""

    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, limit: str, retry_after_s: int) -> None:
        super().__init__(message)
        # OpenAI names the exhausted budget in "type": "requests" or "tokens"
        self.type = limit
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_s)}


class AgentUnavailableError(GatewayError):
    status_code = 503
    code = "agent_unavailable"


class UpstreamTimeoutError(GatewayError):
    status_code = 504
    code = "timeout"


class UpstreamError(GatewayError):
    status_code = 502
    code = "upstream_error"


class ClientDisconnected(GatewayError):
    """The client went away before its answer was ready (nginx's 499); nobody reads this answer."""

    status_code = 499
    type = INVALID_REQUEST
    code = "client_closed_request"


ERROR_DESCRIPTIONS = {
    400: "Invalid or unsupported parameters",
    401: "Missing or incorrect API key",
    404: "Unknown model",
    429: "The API key's requests or tokens per minute are spent; `Retry-After` says when to try again",
    502: "The agent or its expert failed",
    503: "No agent available",
    504: "The agent timed out",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``codes``, each with an example of the error envelope."""
    return {
        code: {
            "description": ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"example": error_body(ERROR_DESCRIPTIONS[code])}},
        }
        for code in codes
    }
