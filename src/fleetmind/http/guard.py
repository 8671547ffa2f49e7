"""``Guard``: the ASGI middleware in front of every fleetmind HTTP server (DNS rebinding, foreign pages, huge bodies).

A web page the user opens can reach 127.0.0.1 and send a "simple" POST without a CORS preflight, and a DNS name
that an attacker rebinds to 127.0.0.1 carries the attacker's name in ``Host``. So a state-changing request
(POST/PUT/PATCH/DELETE) and every WebSocket handshake must name an allowed host in ``Host`` and, when it sends an
``Origin``, come from an allowed host too. Allowed are the loopback names (``127.0.0.1``, ``localhost``,
``::1``), the address the connection arrived on (the host the server is bound to: ``scope["server"]``) and the
configured extra names, on any port. Request bodies are capped (413). Refusals use the one error envelope
(:mod:`fleetmind.http.envelope`); a refused WebSocket handshake is closed before it is accepted (HTTP 403).
Everything else, streaming responses and WebSocket traffic included, passes through untouched.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetmind.http.envelope import error_body

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_MAX_BODY = 1024 * 1024
ANY_HOST = "*"


def host_of(value: str) -> str | None:
    """The host name of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``), lower-cased; None if
    it is not one."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not _is_port(value[end + 1 :])):
            return None
        return value[1:end] or None
    if value.count(":") > 1:  # a bare IPv6 address (not valid in Host, but unambiguous)
        return value if _is_ip(value) else None
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def origin_host(origin: str) -> str | None:
    """The host of an ``Origin`` header (``scheme://host[:port]``); None for ``null`` or anything malformed."""
    try:
        parts = urlsplit(origin.strip())
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.rstrip(".").lower()


class HostPolicy:
    """Which host names a request may name: the loopback names, the server's own address and ``extra``."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        names = {*LOOPBACK_HOSTS, *(str(h).strip().lower().strip("[]").rstrip(".") for h in extra)}
        self.any = ANY_HOST in names
        self.names = frozenset(n for n in names if n and n != ANY_HOST)

    def allows(self, host: str | None, scope: Scope) -> bool:
        if host is None:
            return False
        if self.any or host in self.names:
            return True
        server = scope.get("server")
        return server is not None and str(server[0]).lower().strip("[]") == host


class Guard:
    """Pure ASGI middleware: Host and Origin checks on state-changing requests and WebSocket handshakes, and a
    request body cap (``max_body`` bytes)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Iterable[str] = (),
        max_body: int = DEFAULT_MAX_BODY,
        check_reads: bool = False,
    ) -> None:
        if max_body < 1:
            raise ValueError(f"max_body must be at least 1 byte, not {max_body}")
        self.app = app
        self.policy = HostPolicy(allowed_hosts)
        self.max_body = max_body
        self.check_reads = check_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if kind == "websocket" or self.check_reads or scope["method"] in STATE_CHANGING:
            problem = self.foreign(headers, scope)
            if problem is not None:
                code, message = problem
                if kind == "websocket":
                    await receive()  # websocket.connect
                    await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
                else:
                    await refuse(send, 403, message, code)
                return
        if kind == "http":
            await self.capped(scope, receive, send, headers)
        else:
            await self.app(scope, receive, send)

    def foreign(self, headers: Headers, scope: Scope) -> tuple[str, str] | None:
        """Why this request is refused (code, message), or None when its Host and Origin are allowed."""
        if not self.policy.allows(host_of(headers.get("host", "")), scope):
            return "forbidden_host", "The Host header names a host this server does not answer to."
        origin = headers.get("origin")
        if origin is not None and not self.policy.allows(origin_host(origin), scope):
            return "forbidden_origin", "Requests from this Origin are not allowed."
        return None

    async def capped(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                await refuse(send, 400, "The Content-Length header is not a number.", "invalid_content_length")
            elif int(length) > self.max_body:
                await self.too_large(send)
            else:
                await self.app(scope, receive, send)
            return
        if "transfer-encoding" not in headers:  # no body: leave receive alone (streams wait on it for disconnect)
            await self.app(scope, receive, send)
            return
        # A chunked body: read it up to the cap here, then hand the app what was read.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                await self.too_large(send)
                return
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def too_large(self, send: Send) -> None:
        await refuse(send, 413, f"Request body larger than {self.max_body} bytes.", "request_too_large")


async def refuse(send: Send, status: int, message: str, code: str) -> None:
    """Answer ``status`` with the error envelope, before the app sees the request."""
    body = json.dumps(error_body(message, code=code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
