"""Prometheus metrics of the gateway: requests, latencies, tokens and errors per API key and per model.

A key appears only as its store id (``key_1a2b3c...``, what ``fleetmind keys list`` shows) or, for a hash that
came from the environment, ``sha256:`` and the first 12 hex digits of its hash -- never the key. A request
without a valid key is labelled ``-``. Models are ``fleetmind`` and expert names the gateway accepted, so a
client inventing model names cannot create series (unknown ones are ``-``). The registry is the app's own,
so two apps in one process never clash.

:class:`MetricsMiddleware` (plain ASGI, cheap) times every ``/v1`` request from its first byte in to its last
byte out -- for a stream that is the whole stream -- and reads the labels the route left in the request
state. :class:`RequestMeter` is what the chat service reports to while it works: time to first token, token
usage (which also charges the key's token budget) and errors that arrive after a stream has begun.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetmind.gateway.limits import RateLimiter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NO_LABEL = "-"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fleetmind_gateway_requests",
            "API requests answered, by key, model, endpoint and HTTP status.",
            ["key", "model", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fleetmind_gateway_request_seconds",
            "Time from a request's arrival to the last byte of its answer (a stream's whole length).",
            ["key", "model", "endpoint", "stream"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "fleetmind_gateway_time_to_first_token_seconds",
            "Time from a chat request's arrival to the agent's first text.",
            ["key", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "fleetmind_gateway_tokens",
            "Tokens used, as the expert counted them, by key, model and kind (prompt, completion).",
            ["key", "model", "kind"],
            registry=self.registry,
        )
        self.errors = Counter(
            "fleetmind_gateway_errors",
            "Failed requests by key, model and error code (after a stream began too).",
            ["key", "model", "code"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMeter:
    """One chat request's reporting line into the metrics and the key's token budget."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        limiter: RateLimiter,
        *,
        key_hash: str,
        key_label: str,
        model: str,
        started: float,
    ) -> None:
        self.metrics = metrics
        self.limiter = limiter
        self.key_hash = key_hash
        self.key_label = key_label
        self.model = model
        self.started = started
        self._first_seen = False

    def accepted(self, model: str) -> None:
        """The agent took the request for ``model``: from now on it is this request's label."""
        self.model = model

    def first_token(self) -> None:
        if not self._first_seen:
            self._first_seen = True
            elapsed = time.perf_counter() - self.started
            self.metrics.first_token.labels(self.key_label, self.model).observe(elapsed)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.limiter.charge(self.key_hash, prompt_tokens + completion_tokens)
        self.metrics.tokens.labels(self.key_label, self.model, "prompt").inc(prompt_tokens)
        self.metrics.tokens.labels(self.key_label, self.model, "completion").inc(completion_tokens)

    def stream_error(self, code: str | None) -> None:
        self.metrics.errors.labels(self.key_label, self.model, code or "error").inc()


def _endpoint(path: str) -> str:
    # a fixed set, so an attacker probing URLs cannot add series
    if path == "/v1/chat/completions":
        return "chat.completions"
    if path == "/v1/models" or path.startswith("/v1/models/"):
        return "models"
    return "other"


class MetricsMiddleware:
    """Counts and times every ``/v1`` request; labels come from ``scope["state"]`` (``request.state``)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})["started"] = started
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            state: dict[str, Any] = scope["state"]
            key, model = state.get("key_label", NO_LABEL), state.get("model_label", NO_LABEL)
            endpoint = _endpoint(scope["path"])
            m = self.metrics
            m.requests.labels(key, model, endpoint, str(status)).inc()
            m.latency.labels(key, model, endpoint, "true" if state.get("stream") else "false").observe(
                time.perf_counter() - started
            )
            if status >= 400:
                m.errors.labels(key, model, state.get("error_code") or f"http_{status}").inc()

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record()

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            # a crash, or a client gone mid-stream: still one count, with what we know
            record()
