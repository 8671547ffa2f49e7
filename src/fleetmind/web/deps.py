"""Dependencies of Mission Control's routes: settings, the agent runtime, the key store and API key auth.

Each is an ``Annotated`` alias so a route states what it needs in its signature. Auth takes ``Authorization:
Bearer <key>`` and checks it against :class:`fleetmind.security.KeyStore` (keys file in the state dir plus
hashes from the environment); a missing, malformed or unknown key gets the same 401, so the answer reveals
nothing about which keys exist.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.config import Settings
from fleetmind.security import KeyStore
from fleetmind.web.errors import ApiError

log = logging.getLogger(__name__)


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_runtime(request: Request) -> AgentRuntime:
    runtime: AgentRuntime = request.app.state.runtime
    return runtime


def get_key_store(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.key_store
    return store


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RuntimeDep = Annotated[AgentRuntime, Depends(get_runtime)]
KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_api_key(request: Request, store: KeyStoreDep) -> None:
    try:
        ok = store.verify(bearer_token(request))
    except ValueError as exc:
        # An unreadable key file denies everyone; the operator sees why in the log, the caller does not.
        log.error("API key store unreadable: %s", exc, extra={"event": "key_store_unreadable"})
        ok = False
    if not ok:
        raise ApiError(
            401,
            "missing or invalid API key",
            type="authentication_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )


ApiKeyDep = Annotated[None, Depends(require_api_key)]
