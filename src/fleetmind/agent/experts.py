"""Experts: where they are, how healthy they look, and how to stream a chat completion from one.

An expert is a llama-server registered as a service tagged ``expert`` and ``expert:<name>`` (service name
``expert-<name>``). With ``FLEETMIND_AGENT_EXPERTS="name=http://host:port,..."`` the list is fixed and the
registry is never asked (useful for tests and for pointing the agent at a server started by hand). Registry
answers are reused for a couple of seconds so a burst of requests costs one lookup. Besides what the registry
says, the directory remembers how each expert's last calls went: an expert that just failed goes to the back
of the line for a while, which is also the only health signal a fixed expert has. :class:`ExpertClient`
streams one chat completion from a llama-server's OpenAI-compatible ``/v1/chat/completions``, asking for usage
so token counts are the expert's own; a prompt too large for the context (:mod:`fleetmind.agent.budget`) is
refused before it is sent.

Experts run with the stack's service secret as their API key, and the client sends it as ``Authorization:
Bearer``; so the directory only lists registry instances whose registration proves the same secret
(:func:`fleetmind.security.service.proven`): a fake ``expert-*`` registered by a local process never receives
a request, nor the secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from fleetmind.agent import ExpertProtocolError, ExpertRejectedError, ExpertUnavailableError
from fleetmind.agent.budget import DEFAULT_CONTEXT_TOKENS, PromptTooLargeError, check_prompt
from fleetmind.agent.protocol import AgentRequest, Usage
from fleetmind.cluster.client import ClusterClient, ClusterError, ServiceInstance
from fleetmind.security.service import SecretSource, bearer, only_proven

log = logging.getLogger(__name__)

EXPERT_TAG = "expert"
EXPERT_TAG_PREFIX = "expert:"
EXPERT_SERVICE_PREFIX = "expert-"

Source = Literal["env", "registry"]


@dataclass(frozen=True)
class Expert:
    """One expert endpoint (one llama-server)."""

    name: str
    url: str
    source: Source = "env"
    # The expert's own system prompt (from its registry meta), used when the conversation brings none: small
    # models such as SmolLM2 answer far better with one.
    system_prompt: str | None = None
    # What the expert is good at (registry meta ``description``), for routing by meaning.
    description: str | None = None


@dataclass
class ExpertHealth:
    """What the directory knows about one endpoint; times are ``time.time()`` seconds."""

    name: str
    url: str
    source: Source
    listed: bool = True
    last_ok: float | None = None
    last_failure: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    served: int = 0
    failed: int = 0


def parse_experts(spec: str) -> dict[str, str]:
    """``"a=http://h:1,b=http://h:2"`` → ``{"a": "http://h:1", "b": "http://h:2"}``; ValueError if bad."""
    experts: dict[str, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        name, url = name.strip(), url.strip().rstrip("/")
        parts = urlsplit(url)
        if not sep or not name or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad expert entry {item!r}: expected name=http://host:port")
        if name in experts:
            raise ValueError(f"expert {name!r} is listed twice")
        experts[name] = url
    if not experts:
        raise ValueError("the expert list is empty: expected name=http://host:port[,name2=...]")
    return experts


def expert_name(instance: ServiceInstance) -> str:
    """The expert's name from its ``expert:<name>`` tag, else from its ``expert-<name>`` service name."""
    for tag in instance.tags:
        if tag.startswith(EXPERT_TAG_PREFIX) and len(tag) > len(EXPERT_TAG_PREFIX):
            return tag[len(EXPERT_TAG_PREFIX) :]
    return instance.name.removeprefix(EXPERT_SERVICE_PREFIX)


class ExpertDirectory:
    """The experts the agent may call, in a stable order, plus their recent health."""

    def __init__(
        self,
        *,
        fixed: Mapping[str, str] | None = None,
        cluster: ClusterClient | None = None,
        ttl_s: float = 2.0,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        secret: SecretSource | None = None,
    ) -> None:
        if ttl_s < 0 or cooldown_s < 0:
            raise ValueError("ttl_s and cooldown_s must not be negative")
        self._fixed = [Expert(name, url, "env") for name, url in fixed.items()] if fixed is not None else None
        self._cluster = cluster
        self._secret = secret or SecretSource()
        self._ttl_s = ttl_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._cached: list[Expert] = []
        self._cached_at: float | None = None
        self._lock = asyncio.Lock()
        self._health: dict[tuple[str, str], ExpertHealth] = {}
        self._failed_at: dict[tuple[str, str], float] = {}
        self.discovery_error: str | None = None
        for expert in self._fixed or []:
            self._health_of(expert)

    @property
    def mode(self) -> Source:
        return "env" if self._fixed is not None else "registry"

    def _health_of(self, expert: Expert) -> ExpertHealth:
        key = (expert.name, expert.url)
        if key not in self._health:
            self._health[key] = ExpertHealth(name=expert.name, url=expert.url, source=expert.source)
        return self._health[key]

    async def experts(self) -> list[Expert]:
        """Every expert currently listed (fixed list, or the registry's passing instances)."""
        if self._fixed is not None:
            return list(self._fixed)
        async with self._lock:
            now = self._clock()
            if self._cached_at is not None and now - self._cached_at < self._ttl_s:
                return list(self._cached)
            await self._refresh(now)
            return list(self._cached)

    async def _refresh(self, now: float) -> None:
        try:
            if self._cluster is None:
                # A bad CONSUL_HTTP_ADDR raises ValueError here; it is reported like an outage.
                self._cluster = ClusterClient()
            registered = await self._cluster.aservices_by_tag(EXPERT_TAG)
        except (ClusterError, ValueError) as exc:
            # A registry hiccup should not take routing down: keep using what we knew, and say so.
            self.discovery_error = str(exc)
            self._cached_at = now
            log.warning(
                "expert discovery failed; keeping %d known experts",
                len(self._cached),
                extra={"event": "expert_discovery_failed", "error": str(exc), "known": len(self._cached)},
            )
            return
        self.discovery_error = None
        secret = self._secret.get()
        instances = only_proven(secret, registered)
        found = [
            Expert(
                expert_name(i),
                i.url,
                "registry",
                i.meta.get("system_prompt") or None,
                i.meta.get("description") or None,
            )
            for i in instances
        ]
        listed = {(e.name, e.url) for e in found}
        for key, health in self._health.items():
            health.listed = key in listed
        for expert in found:
            self._health_of(expert).listed = True
        if [(e.name, e.url) for e in found] != [(e.name, e.url) for e in self._cached]:
            log.info(
                "experts changed: %s",
                ", ".join(f"{e.name}={e.url}" for e in found) or "none",
                extra={"event": "experts_changed", "experts": [e.name for e in found]},
            )
        self._cached = found
        self._cached_at = now

    def is_healthy(self, expert: Expert) -> bool:
        """Listed and not inside the cooldown that follows a failure."""
        health = self._health_of(expert)
        failed_at = self._failed_at.get((expert.name, expert.url))
        cooling = failed_at is not None and self._clock() - failed_at < self._cooldown_s
        return health.listed and not cooling

    def record_success(self, expert: Expert) -> None:
        health = self._health_of(expert)
        health.last_ok = time.time()
        health.consecutive_failures = 0
        health.served += 1
        self._failed_at.pop((expert.name, expert.url), None)

    def record_failure(self, expert: Expert, error: str) -> None:
        health = self._health_of(expert)
        health.last_failure = time.time()
        health.last_error = error
        health.consecutive_failures += 1
        health.failed += 1
        self._failed_at[(expert.name, expert.url)] = self._clock()

    def snapshot(self) -> list[tuple[ExpertHealth, bool]]:
        """Every endpoint ever seen with whether it counts as healthy now, for status pages."""
        out = []
        for health in self._health.values():
            expert = Expert(health.name, health.url, health.source)
            out.append((ExpertHealth(**vars(health)), self.is_healthy(expert)))
        return out


@dataclass(frozen=True)
class TextDelta:
    """A piece of text the expert generated."""

    text: str


@dataclass(frozen=True)
class Completion:
    """The end of a completion: why it stopped and the expert's own token counts."""

    finish_reason: str
    usage: Usage


StreamItem = TextDelta | Completion

# How much of an error body goes into an error message: enough to read, never a whole page.
_ERROR_BODY_LIMIT = 500
# Statuses that say the request itself is wrong; anything else (429, 5xx, 404 from a non-llama server) is the
# expert's trouble and worth trying elsewhere.
_REJECTED_STATUSES = frozenset({400, 413, 422})


def completion_payload(request: AgentRequest, *, model: str, system_prompt: str | None = None) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body for ``request``: messages, the caller's sampling, streaming.

    ``system_prompt`` leads the conversation when the caller sent no system message of its own.
    """
    messages = [m.model_dump(exclude_none=True) for m in request.messages]
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    payload.update(request.params.model_dump(exclude_none=True))
    return payload


def _usage_from(chunk: dict[str, Any]) -> Usage | None:
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        return Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    # llama.cpp also reports its timings, which carry the same counts; used if usage was not sent.
    timings = chunk.get("timings")
    if isinstance(timings, dict) and "prompt_n" in timings:
        return Usage(
            # prompt_n counts only the tokens evaluated now; cache_n the ones reused from the prompt cache.
            prompt_tokens=int(timings.get("prompt_n") or 0) + int(timings.get("cache_n") or 0),
            completion_tokens=int(timings.get("predicted_n") or 0),
        )
    return None


class ExpertClient:
    """Streams chat completions from llama-servers over one shared HTTP connection pool."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        secret: SecretSource | None = None,
    ) -> None:
        if connect_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError("expert timeouts must be positive")
        self._secret = secret or SecretSource()
        if context_tokens < 1:
            raise ValueError("context_tokens must be positive")
        self.context_tokens = context_tokens
        self._own_http = http is None
        # The read timeout bounds every silence, the wait for the first token included, so a hung expert fails
        # over instead of holding the request until its overall deadline.
        timeout = httpx.Timeout(connect=connect_timeout_s, read=read_timeout_s, write=connect_timeout_s, pool=None)
        self._http = http or httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=32))

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def stream_chat(self, expert: Expert, request: AgentRequest) -> AsyncGenerator[StreamItem, None]:
        """Yield the expert's text as it comes, then one :class:`Completion`; raises ExpertError."""
        url = expert.url.rstrip("/") + "/v1/chat/completions"
        payload = completion_payload(request, model=expert.name, system_prompt=expert.system_prompt)
        try:
            check_prompt([m.get("content") or "" for m in payload["messages"]], context_tokens=self.context_tokens)
        except PromptTooLargeError as exc:
            # the expert never sees it; rejected, so no other expert is tried either
            raise ExpertRejectedError(f"request refused before expert {expert.name}: {exc}") from None
        try:
            async with self._http.stream("POST", url, json=payload, headers=bearer(self._secret.get())) as response:
                if response.status_code != 200:
                    body = (await response.aread())[:_ERROR_BODY_LIMIT].decode("utf-8", "replace")
                    rejected = response.status_code in _REJECTED_STATUSES
                    error = ExpertRejectedError if rejected else ExpertUnavailableError
                    raise error(f"expert {expert.name} answered HTTP {response.status_code}: {body}")
                async for item in self._parse(expert, response):
                    yield item
        except httpx.TimeoutException as exc:
            raise ExpertUnavailableError(f"expert {expert.name} timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            # The message travels back to API callers: the expert's name and the kind of failure, no address.
            kind = type(exc).__name__
            raise ExpertUnavailableError(f"expert {expert.name} could not be reached ({kind})") from exc

    @staticmethod
    async def _parse(expert: Expert, response: httpx.Response) -> AsyncIterator[StreamItem]:
        finish_reason: str | None = None
        usage: Usage | None = None
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                if line.startswith("error:"):
                    raise ExpertUnavailableError(
                        f"expert {expert.name} reported: {line[6:].strip()[:_ERROR_BODY_LIMIT]}"
                    )
                continue  # blank separators and SSE comments
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise ExpertProtocolError(f"expert {expert.name} sent a line that is not JSON: {data[:200]!r}") from exc
            if not isinstance(chunk, dict):
                raise ExpertProtocolError(f"expert {expert.name} sent a chunk that is not an object")
            if "error" in chunk:
                raise ExpertUnavailableError(
                    f"expert {expert.name} reported: {str(chunk['error'])[:_ERROR_BODY_LIMIT]}"
                )
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield TextDelta(text)
                if choice.get("finish_reason"):
                    finish_reason = str(choice["finish_reason"])
            usage = _usage_from(chunk) or usage
        if finish_reason is None:
            raise ExpertProtocolError(f"expert {expert.name} ended its stream without a finish reason")
        yield Completion(finish_reason=finish_reason, usage=usage or Usage())
