"""Per-key budgets: requests per minute and tokens per minute, as token buckets keyed by the key's SHA-256.

Each budget is a bucket that holds at most one minute's allowance and refills continuously, so a key may burst
up to its per-minute limit and then goes at the steady rate. A request takes one unit from the request bucket
before any work starts. Tokens are only known once the answer is done, so the token bucket is charged
afterwards (prompt + completion, llama.cpp's own counts) and may go into debt; a key in debt is refused until
the refill has paid it back. A refusal is a :class:`~fleetmind.gateway.errors.RateLimitedError` (429) whose
``Retry-After`` is the whole seconds until the refused request would pass. Buckets are keyed by the key's hash,
never the key, and exist only for keys that passed authentication, so their number is bounded by the key store.
State is per gateway process: several gateway instances each allow the full budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetmind.gateway.errors import RateLimitedError


@dataclass
class _Bucket:
    level: float
    stamp: float


class _Budget:
    """One kind of allowance (``per_minute`` units) for every key."""

    def __init__(self, name: str, per_minute: int, clock: Callable[[], float]) -> None:
        self.name = name
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # units per second
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        else:
            bucket.level = min(self.capacity, bucket.level + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        return bucket

    def wait_s(self, key: str, need: float) -> float:
        """Seconds until the bucket holds ``need`` units (0 when it already does)."""
        bucket = self._refilled(key)
        return 0.0 if bucket.level >= need else (need - bucket.level) / self.rate

    def take(self, key: str, units: float) -> None:
        self._refilled(key).level -= units


class RateLimiter:
    """Requests and tokens per minute per key hash; a limit of 0 turns that budget off."""

    def __init__(
        self,
        *,
        requests_per_minute: int = 0,
        tokens_per_minute: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if requests_per_minute < 0 or tokens_per_minute < 0:
            raise ValueError("rate limits must not be negative (0 turns a limit off)")
        self._requests = _Budget("requests", requests_per_minute, clock) if requests_per_minute else None
        self._tokens = _Budget("tokens", tokens_per_minute, clock) if tokens_per_minute else None
        # the gateway calls both from the event loop; the lock keeps a bucket's read-modify-write whole for any
        # caller that uses threads
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._requests is not None or self._tokens is not None

    def admit(self, key_hash: str) -> None:
        """Take one request from ``key_hash``'s budget, or raise the 429 that says when to come back."""
        with self._lock:
            refusals: list[tuple[float, _Budget]] = []
            if self._requests is not None and (wait := self._requests.wait_s(key_hash, 1.0)) > 0:
                refusals.append((wait, self._requests))
            # a key in token debt waits until the debt is repaid and one token is back
            if self._tokens is not None and (wait := self._tokens.wait_s(key_hash, 1.0)) > 0:
                refusals.append((wait, self._tokens))
            if refusals:
                wait, budget = max(refusals, key=lambda r: r[0])
                retry = max(1, math.ceil(wait))
                unit = "requests" if budget.name == "requests" else "tokens"
                raise RateLimitedError(
                    f"Rate limit reached for this API key on {unit} per minute (limit {int(budget.capacity)}). "
                    f"Please try again in {retry}s.",
                    limit=budget.name,
                    retry_after_s=retry,
                )
            if self._requests is not None:
                self._requests.take(key_hash, 1.0)

    def charge(self, key_hash: str, tokens: int) -> None:
        """Count ``tokens`` (prompt + completion) a finished request used against ``key_hash``."""
        if self._tokens is None or tokens <= 0:
            return
        with self._lock:
            self._tokens.take(key_hash, float(tokens))
