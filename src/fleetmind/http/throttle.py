"""Failed authentications are throttled per client address, for every HTTP app of the stack.

:class:`AuthThrottle` gives each client address a bucket of ``burst`` failures that refills at ``per_minute``; a
failed authentication (any response with status 401) takes one, and an address whose bucket is empty gets 429
with ``Retry-After`` for every request until the bucket refills, before the app (or its key check) sees it. A
right key never costs anything, so a person who mistypes a key a few times is not locked out, while guessing keys
or enrolment tokens is held to a trickle. :class:`AuthThrottleMiddleware` is the ASGI wrapper an app adds with
one line (``app.add_middleware(AuthThrottleMiddleware)``): it learns of failures from the response status, so
the key checks themselves need no change. State is per process and bounded (the least recently seen addresses
are forgotten first). Settings: ``FLEETMIND_AUTH_THROTTLE_BURST`` / ``_PER_MINUTE`` (0 turns it off).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetmind.http.envelope import error_body

__all__ = ["AuthThrottle", "AuthThrottleMiddleware"]

DEFAULT_BURST = 30
DEFAULT_PER_MINUTE = 30
MAX_CLIENTS = 4096


@dataclass
class _Bucket:
    level: float
    stamp: float


class AuthThrottle:
    """``burst`` failed authentications per client address, refilled at ``per_minute``; 0 turns it off."""

    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        per_minute: float = DEFAULT_PER_MINUTE,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 0 or per_minute < 0 or max_clients < 1:
            raise ValueError("auth throttle: burst and per_minute must be >= 0 and max_clients >= 1")
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> AuthThrottle:
        """Limits from ``FLEETMIND_AUTH_THROTTLE_BURST`` / ``FLEETMIND_AUTH_THROTTLE_PER_MINUTE``."""
        try:
            burst = int(os.environ.get("FLEETMIND_AUTH_THROTTLE_BURST", DEFAULT_BURST))
            per_minute = float(os.environ.get("FLEETMIND_AUTH_THROTTLE_PER_MINUTE", DEFAULT_PER_MINUTE))
        except ValueError as exc:
            raise ValueError(f"FLEETMIND_AUTH_THROTTLE_*: {exc}") from None
        return cls(burst=burst, per_minute=per_minute)

    @property
    def enabled(self) -> bool:
        return self.burst > 0 and self.rate > 0

    def _refilled(self, client: str) -> _Bucket | None:
        bucket = self._buckets.get(client)
        if bucket is None:
            return None
        now = self._clock()
        bucket.level = min(self.burst, bucket.level + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.level >= self.burst:
            del self._buckets[client]  # back to full: nothing left to remember
            return None
        return bucket

    def retry_after(self, client: str) -> int:
        """Whole seconds until ``client`` may try again; 0 when it may now."""
        if not self.enabled:
            return 0
        with self._lock:
            bucket = self._refilled(client)
            if bucket is None or bucket.level >= 1.0:
                return 0
            return max(1, math.ceil((1.0 - bucket.level) / self.rate))

    def failed(self, client: str) -> None:
        """Count one failed authentication from ``client``."""
        if not self.enabled:
            return
        with self._lock:
            bucket = self._refilled(client) or _Bucket(self.burst, self._clock())
            bucket.level = max(bucket.level - 1.0, -self.burst)  # debt is bounded: one burst's worth
            self._buckets[client] = bucket
            self._buckets.move_to_end(client)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class AuthThrottleMiddleware:
    """ASGI middleware: 429 for an address with too many recent 401s; counts the 401s it lets through."""

    def __init__(self, app: ASGIApp, throttle: AuthThrottle | None = None) -> None:
        self.app = app
        self.throttle = throttle or AuthThrottle.from_env()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.throttle.enabled:
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        wait = self.throttle.retry_after(client)
        if wait:
            await self._refuse(send, wait)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.throttle.failed(client)
            await send(message)

        await self.app(scope, receive, watch)

    @staticmethod
    async def _refuse(send: Send, wait: int) -> None:
        body = json.dumps(
            error_body(
                f"Too many failed authentications from this address; try again in {wait}s.",
                type_="rate_limit_error",
                code="auth_throttled",
            )
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(wait).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
