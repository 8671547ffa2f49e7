"""Request dependencies, as ``Annotated`` aliases: enrolment-token and API-key checks and the shared service.

Nodes calling home show an enrolment token; people and programs reading status or retrying a node show one of
the stack's API keys of scope ``operator`` or above (``fleetmind keys create --scope operator``; a chat key gets
403). Both arrive as ``Authorization: Bearer <secret>``, are
compared as SHA-256 hashes and are never logged. The checks run before the body is validated, so a caller
without a valid secret learns nothing about what a valid request looks like."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fleetmind.http.auth import require_key
from fleetmind.provisioning.errors import AuthenticationError
from fleetmind.provisioning.metrics import Metrics
from fleetmind.provisioning.service import ProvisioningService
from fleetmind.security import KeyStore, hash_key

_token_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="EnrolmentToken",
    description="An enrolment token made with `fleetmind provision token create`.",
)


def get_service(request: Request) -> ProvisioningService:
    service: ProvisioningService = request.app.state.service
    return service


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def get_key_store(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.key_store
    return store


def require_enrolment_token(
    service: Annotated[ProvisioningService, Depends(get_service)],
    metrics: Annotated[Metrics, Depends(get_metrics)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_token_bearer)],
) -> str:
    """The enrolment token, once it exists and is neither expired, used up nor revoked; 401 otherwise."""
    # a plain def: FastAPI runs it in a worker thread, so the SQLite read never blocks the event loop
    if credentials is None or not credentials.credentials:
        metrics.call_homes.labels("unauthorized").inc()
        raise AuthenticationError("Missing enrolment token: send it as 'Authorization: Bearer <token>'.")
    token = service.store.token_by_hash(hash_key(credentials.credentials))
    problem = "invalid enrolment token" if token is None else token.problem()
    if problem is not None:
        metrics.call_homes.labels("unauthorized").inc()
        raise AuthenticationError(problem[0].upper() + problem[1:] + ".")
    return credentials.credentials


EnrolmentToken = Annotated[str, Depends(require_enrolment_token)]
# people and programs reading status or retrying a node: a key of scope operator (the HTTP kit's one check)
ApiKey = Depends(require_key("operator"))
Service = Annotated[ProvisioningService, Depends(get_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
