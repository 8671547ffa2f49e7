"""Who is calling: one API-key check for every app of the stack, and the service credential between services.

A key arrives as ``Authorization: Bearer <key>`` and is checked against :class:`~fleetmind.security.KeyStore`
(SHA-256 hashes compared in constant time); a missing, malformed or unknown key is the same failure, so the answer
reveals nothing about which keys exist. A key that checks out is a :class:`Caller`: the key's id, name and scope.
A service of the stack (the gateway) calls another (the agent) with the stack's service secret in
``X-Fleetmind-Service`` and names the key it speaks for (``X-Fleetmind-Caller-Id``/``-Scope``): the caller's raw key
never crosses the process boundary, and the agent trusts the gateway's check instead of repeating it.
:func:`caller_of` answers both; :func:`require_key` is the one FastAPI dependency every app's routes use: the
caller, or 401 (:class:`KeyRefused`, the same answer whatever was wrong) or 403 (:class:`ScopeTooLow`). It finds
the key store on ``app.state.key_store`` and, for routes that take the service credential, the secret on
``app.state.service_secret``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from fleetmind.contracts.names import ANY_OWNER
from fleetmind.http.envelope import ServiceError
from fleetmind.security import KeyStore, Scope, scope_allows
from fleetmind.security.keys import check_scope
from fleetmind.security.service import CALLER_ID_HEADER, CALLER_SCOPE_HEADER, SERVICE_HEADER, same

__all__ = [
    "Caller",
    "KeyRefused",
    "ScopeTooLow",
    "bearer_token",
    "caller_of",
    "forwarded_caller",
    "identify",
    "require_key",
    "service_headers",
]

log = logging.getLogger(__name__)

# what a key id looks like (``key_…``, ``env-…``): never ``*``, which means "every owner"
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")


@dataclass(frozen=True)
class Caller:
    """Whose key made a request: the key's id, name and scope from the key file (``env-…`` for a key from the
    env); ``via`` is ``service`` when a service of the stack vouched for it, empty for a key shown directly."""

    key_id: str
    name: str
    scope: Scope = "chat"
    via: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.key_id})"

    def allows(self, need: Scope) -> bool:
        return scope_allows(self.scope, need)

    @property
    def is_admin(self) -> bool:
        return self.allows("admin")

    @property
    def tenant(self) -> str:
        """Whose conversations and memories this caller may see: its own, or everyone's (``*``) for an admin."""
        return ANY_OWNER if self.is_admin else self.key_id


def bearer_token(conn: HTTPConnection) -> str | None:
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def identify(store: KeyStore, key: str | None) -> Caller | None:
    """The caller ``key`` belongs to, or None (:meth:`KeyStore.identify`: every hash compared in constant time)."""
    try:
        record = store.identify(key)
    except ValueError as exc:
        # An unreadable key file denies everyone; the operator sees why in the log, the caller does not.
        log.error("API key store unreadable: %s", exc, extra={"event": "key_store_unreadable"})
        return None
    return Caller(record.id, record.name, record.scope) if record is not None else None


def forwarded_caller(conn: HTTPConnection, secret: str | None) -> Caller | None:
    """The caller a service speaks for, when it shows the service secret; None when it does not (or names no one)."""
    offered = conn.headers.get(SERVICE_HEADER)
    key_id = conn.headers.get(CALLER_ID_HEADER, "").strip()
    if offered is None or not same(secret, offered) or not _KEY_ID.fullmatch(key_id):
        return None
    try:
        scope = check_scope(conn.headers.get(CALLER_SCOPE_HEADER, "chat"))
    except ValueError:
        return None
    return Caller(key_id, key_id, scope, via="service")


def caller_of(conn: HTTPConnection, store: KeyStore, *, secret: str | None = None) -> Caller | None:
    """The request's caller: a service speaking for one (when ``secret`` is given and it shows the service
    header), else the bearer key's owner; None when neither checks out."""
    if secret is not None and SERVICE_HEADER.lower() in conn.headers:
        return forwarded_caller(conn, secret)
    return identify(store, bearer_token(conn))


def service_headers(secret: str, caller: Caller) -> dict[str, str]:
    """The headers a service sends to speak for ``caller`` under the stack's ``secret``."""
    return {SERVICE_HEADER: secret, CALLER_ID_HEADER: caller.key_id, CALLER_SCOPE_HEADER: caller.scope}


MISSING_OR_INVALID = (
    "missing or invalid API key: send a key made with `fleetmind keys create` as 'Authorization: Bearer KEY'"
)


class KeyRefused(ServiceError):
    """401: no key, a malformed one, an unknown one, or a service credential that does not check out."""

    status_code = 401
    type = "invalid_request_error"  # what OpenAI answers a bad key with; its clients parse this envelope too
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__(MISSING_OR_INVALID)


class ScopeTooLow(ServiceError):
    """403: the key is good, its scope too low for the route."""

    status_code = 403
    type = "permission_error"
    code = "insufficient_scope"

    def __init__(self, caller: Caller, need: Scope) -> None:
        super().__init__(
            f"this needs a key of scope {need!r}; this key's scope is {caller.scope!r} "
            f"(make one with `fleetmind keys create --scope {need}`)"
        )


# Declares the bearer scheme in every app's OpenAPI document; the check itself is caller_of's.
_bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey", description="An API key made with `fleetmind keys create`."
)


def require_key(need: Scope = "chat", *, service: bool = False) -> Callable[..., Awaitable[Caller]]:
    """The dependency that answers "who is calling?" for a route that needs a key of scope ``need`` (``service``:
    the stack's services may call it too, speaking for a caller)."""

    async def dependency(
        request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Caller:
        # async on purpose: FastAPI runs a plain def dependency in a worker thread, a hop per request
        store: KeyStore = request.app.state.key_store
        secret: str | None = getattr(request.app.state, "service_secret", None) if service else None
        caller = caller_of(request, store, secret=secret)
        if caller is None:
            raise KeyRefused()
        if not caller.allows(need):
            raise ScopeTooLow(caller, need)
        request.state.caller = caller
        return caller

    dependency.__name__ = f"require_{need}_key" + ("_or_service" if service else "")
    return dependency
