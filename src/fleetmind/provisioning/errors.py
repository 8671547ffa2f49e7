"""The provisioning API's exceptions and the one error envelope every failure leaves in.

Every path out of the app -- our own errors, FastAPI's validation errors, Starlette's 404/405/413 and any
crash -- is answered as ``{"error": {"message", "type", "param", "code"}}``, the shape the gateway uses too.
Validation errors are 422 with ``param`` naming the field (``facts.disks[0].name``) and a message a person can
act on."""

from __future__ import annotations

import logging

from fleetmind.http.envelope import INVALID_REQUEST, SERVER_ERROR, ServiceError

log = logging.getLogger(__name__)


class ProvisioningError(ServiceError):
    """Base class: an error with the HTTP status and envelope fields it is answered with."""

    status_code = 500
    type = SERVER_ERROR
    code: str | None = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, param=param)


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
