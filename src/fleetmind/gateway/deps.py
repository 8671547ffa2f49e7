"""Request dependencies: the API key check and the app's shared services, as ``Annotated`` aliases.

A key is read from ``Authorization: Bearer <key>`` and verified against the shared key store (SHA-256 hashes,
constant-time compare). The key itself is never logged; the header is handed on unchanged so the agent can
check it too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fleetmind.gateway.discovery import AgentLocator
from fleetmind.gateway.errors import AuthenticationError
from fleetmind.gateway.service import ChatService
from fleetmind.security import KeyStore

# auto_error=False: we answer a missing key ourselves, in the OpenAI envelope
_bearer = HTTPBearer(auto_error=False, description="An API key made with `fleetmind keys create`.")


def get_key_store(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.key_store
    return store


def get_chat_service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat_service
    return service


def get_locator(request: Request) -> AgentLocator:
    locator: AgentLocator = request.app.state.locator
    return locator


def require_api_key(
    store: Annotated[KeyStore, Depends(get_key_store)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The ``Authorization`` header value to forward, once its key checks out; 401 otherwise."""
    # a plain def: FastAPI runs it in a worker thread, so the key file's stat/read never blocks the event loop
    if credentials is None or not credentials.credentials:
        raise AuthenticationError(
            "You didn't provide an API key. Send it in the Authorization header as 'Bearer YOUR_KEY'."
        )
    if not store.verify(credentials.credentials):
        hint = " No API keys exist yet: create one with `fleetmind keys create`." if store.is_empty() else ""
        raise AuthenticationError("Incorrect API key provided." + hint)
    return f"Bearer {credentials.credentials}"


Authorization = Annotated[str, Depends(require_api_key)]
Service = Annotated[ChatService, Depends(get_chat_service)]
Locator = Annotated[AgentLocator, Depends(get_locator)]
