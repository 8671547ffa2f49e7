"""``TokenGate``: the embedded Nomad and Consul APIs answer only to the cluster's token, and only to JSON bodies.

It is what ACLs do on the real agents (``default_policy = "deny"`` with one management token): a request
without the token, or with another one, gets ``403 Permission denied``. The token comes in the product's own
header (``X-Nomad-Token`` or ``X-Consul-Token``) or as ``Authorization: Bearer``; never in the URL
(``?token=`` is not read, so it cannot land in a log). Tokens are compared in constant time. A request body
must be JSON (or come without a ``Content-Type``, as python-nomad and py-consul send it); the kinds a web page
can send without a CORS preflight (``text/plain``, forms) get 415. Paths listed in ``open_paths`` (the leader
status, which real agents answer without a token too) skip the token check. Host and Origin checks and the body
cap are :mod:`fleetmind.http`'s guard, installed in front of this.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

JSON_TYPES = ("application/json",)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def is_json(media_type: str) -> bool:
    return media_type in JSON_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


class TokenGate:
    """Pure ASGI middleware: ``token`` in ``header`` (or ``Authorization: Bearer``) and JSON bodies only."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        header: str,
        open_paths: Iterable[str] = (),
        raw_body_prefixes: Iterable[str] = (),
    ) -> None:
        if len(token) < 16:
            raise ValueError("the cluster token must be at least 16 characters")
        self.app = app
        self.token = token.encode()
        self.header = header.lower()
        self.open_paths = frozenset(open_paths)
        # Paths whose body is raw bytes (Consul KV values): application/octet-stream is allowed there too.
        self.raw_body_prefixes = tuple(raw_body_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope["path"]
        if path not in self.open_paths and not self.allowed(headers):
            await _plain(send, 403, "Permission denied")
            return
        if scope["method"] in BODY_METHODS and not self.body_type_ok(headers, path):
            await _plain(send, 415, "Request body must be JSON (Content-Type: application/json)")
            return
        await self.app(scope, receive, send)

    def allowed(self, headers: Headers) -> bool:
        given = headers.get(self.header, "").strip()
        if not given:
            scheme, _, credential = headers.get("authorization", "").partition(" ")
            given = credential.strip() if scheme.lower() == "bearer" else ""
        return bool(given) and hmac.compare_digest(given.encode(), self.token)

    def body_type_ok(self, headers: Headers, path: str) -> bool:
        if "content-type" not in headers:
            return True
        media_type = _media_type(headers["content-type"])
        if is_json(media_type):
            return True
        return media_type == "application/octet-stream" and path.startswith(self.raw_body_prefixes)


async def _plain(send: Send, status: int, text: str) -> None:
    """An error as the real agents write it: plain text."""
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
