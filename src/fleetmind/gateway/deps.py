"""Request dependencies (all ``async def``: FastAPI would run a plain def in a worker thread, costing a hop
each): the API key check, the key's rate limit and the app's shared services.

A key is read from ``Authorization: Bearer <key>`` and verified against the shared key store (SHA-256 hashes,
constant-time compare). Any scope may use ``/v1/*`` (``chat`` is the least). The key itself is never logged nor
handed on: the agent is told who is asking (the key's id and scope) under the gateway's service credential. A key
that checks out then takes one request from its budget (429 when it is spent); from there on the request is known
by the key's hash and a label for metrics (the store id, or a hash prefix).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fleetmind.gateway.discovery import AgentLocator
from fleetmind.gateway.errors import AuthenticationError
from fleetmind.gateway.limits import RateLimiter
from fleetmind.gateway.metrics import GatewayMetrics
from fleetmind.gateway.service import ChatService, Identity
from fleetmind.http.auth import Caller as KitCaller
from fleetmind.http.auth import bearer_token, require_key
from fleetmind.security import KeyStore, hash_key

# auto_error=False: we answer a missing key ourselves, in the OpenAI envelope
_bearer = HTTPBearer(auto_error=False, description="An API key made with `fleetmind keys create`.")


async def get_key_store(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.key_store
    return store


async def get_chat_service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat_service
    return service


async def get_locator(request: Request) -> AgentLocator:
    locator: AgentLocator = request.app.state.locator
    return locator


async def get_metrics(request: Request) -> GatewayMetrics:
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


@dataclass(frozen=True)
class Caller:
    """Who is asking: who to name to the agent, the key's hash (budgets) and its label (metrics, logs)."""

    identity: Identity
    key_hash: str
    key_label: str


def key_label(store: KeyStore, digest: str) -> str:
    """The store id of the key with hash ``digest``, else ``sha256:`` and a hash prefix (an environment key)."""
    for record in store.records():
        if hmac.compare_digest(record.sha256, digest):
            return record.id
    return "sha256:" + digest[:12]


async def require_api_key(
    request: Request,
    store: Annotated[KeyStore, Depends(get_key_store)],
    caller: Annotated[KitCaller, Depends(require_key("chat"))],
) -> Caller:
    """The caller, once its key checks out (the HTTP kit's one check) and its budget allows one more request."""
    key = bearer_token(request) or ""
    digest = hash_key(key)
    checked = Caller(Identity(caller.key_id, caller.scope), digest, key_label(store, digest))
    request.state.key_label = checked.key_label  # a refused request is still counted against its key
    limiter: RateLimiter = request.app.state.limiter
    limiter.admit(digest)
    return checked


async def require_metrics_key(
    request: Request,
    store: Annotated[KeyStore, Depends(get_key_store)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """A key for ``/metrics`` only when the settings ask for one; scraping never spends a rate budget."""
    if not request.app.state.settings.metrics_require_key:
        return
    if credentials is None or not store.verify(credentials.credentials):
        raise AuthenticationError("/metrics needs an API key here. Send it as 'Authorization: Bearer YOUR_KEY'.")


Authorization = Annotated[Caller, Depends(require_api_key)]
MetricsKey = Annotated[None, Depends(require_metrics_key)]
Metrics = Annotated[GatewayMetrics, Depends(get_metrics)]
Service = Annotated[ChatService, Depends(get_chat_service)]
Locator = Annotated[AgentLocator, Depends(get_locator)]
