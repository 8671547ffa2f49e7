"""Experts: where they are, how healthy they look, and how to stream a chat completion from one.

An expert is a llama-server registered as a service tagged ``expert`` and ``expert:<name>`` (service name
``expert-<name>``). With ``FLEETMIND_AGENT_EXPERTS="name=http://host:port,..."`` the list is fixed and the
registry is never asked (useful for tests and for pointing the agent at a server started by hand). Registry
answers are reused for ``ttl_s`` so a burst of requests costs one lookup; after that, for up to ``stale_s`` more,
a request is served what was known while one refresh runs in the background, so no request waits on the registry
once the directory has answered once (the agent warms it when it starts). Besides what the registry
says, the directory remembers how each expert's last calls went: an expert that just failed goes to the back
of the line for a while, which is also the only health signal a fixed expert has. :class:`ExpertClient`
streams one chat completion from a llama-server's OpenAI-compatible ``/v1/chat/completions``, asking for usage
so token counts are the expert's own; a prompt too large for the context (:mod:`fleetmind.llm.budget`) is
refused before it is sent.

Experts run with the stack's service secret as their API key, and the client sends it as ``Authorization:
Bearer``; so the directory only lists registry instances whose registration proves the same secret
(:func:`fleetmind.security.service.proven`): a fake ``expert-*`` registered by a local process never receives
a request, nor the secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fleetmind.agent.profiles import Generation
from fleetmind.cluster.client import ClusterClient, ClusterError, ServiceInstance
from fleetmind.contracts.names import EXPERT_TAG
from fleetmind.contracts.names import expert_name as contract_expert_name
from fleetmind.llm.chat import Expert, Source
from fleetmind.security.service import SecretSource, only_proven

log = logging.getLogger(__name__)


@dataclass
class ExpertHealth:
    """What the directory knows about one endpoint; times are ``time.time()`` seconds."""

    name: str
    url: str
    source: Source
    node_class: str | None = None
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
    return contract_expert_name(instance.name, instance.tags)


def _node_class(value: str | None) -> str | None:
    """The node class an expert registered (its job's ``node_class = "${meta.fleetmind_class}"``); None when
    absent or left uninterpolated (a node without the meta)."""
    if not value or "${" in value:
        return None
    return value[:32]


def _generation(name: str, value: str | None) -> dict[str, Any]:
    """The generation defaults an expert registered (JSON in its meta ``generation``, written from its profile);
    a value that does not check out is logged and left out: the expert still serves, with the server's defaults."""
    try:
        return Generation.from_meta(value).payload()
    except ValueError as exc:
        log.warning(
            "expert %s registered generation defaults that are not valid (%s); using the server's",
            name,
            exc,
            extra={"event": "expert_generation_invalid", "expert": name, "error": str(exc)},
        )
        return {}


class ExpertDirectory:
    """The experts the agent may call, in a stable order, plus their recent health."""

    def __init__(
        self,
        *,
        fixed: Mapping[str, str] | None = None,
        cluster: ClusterClient | None = None,
        ttl_s: float = 2.0,
        stale_s: float = 0.0,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        secret: SecretSource | None = None,
    ) -> None:
        if ttl_s < 0 or cooldown_s < 0 or stale_s < 0:
            raise ValueError("ttl_s, stale_s and cooldown_s must not be negative")
        self._fixed = [Expert(name, url, "env") for name, url in fixed.items()] if fixed is not None else None
        self._cluster = cluster
        self._secret = secret or SecretSource()
        self._ttl_s = ttl_s
        self._stale_s = stale_s
        self._refreshing: asyncio.Task[None] | None = None
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
        if expert.node_class is not None:
            self._health[key].node_class = expert.node_class
        return self._health[key]

    async def experts(self) -> list[Expert]:
        """Every expert currently listed (fixed list, or the registry's passing instances)."""
        if self._fixed is not None:
            return list(self._fixed)
        now = self._clock()
        age = None if self._cached_at is None else now - self._cached_at
        if age is not None and age < self._ttl_s:
            return list(self._cached)
        if age is not None and age < self._ttl_s + self._stale_s:
            # what was known a moment ago serves this request; the registry is asked off the request's path
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.create_task(self._refresh_in_background(), name="fleetmind-expert-discovery")
            return list(self._cached)
        await self._refresh_locked()
        return list(self._cached)

    async def _refresh_locked(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._cached_at is not None and now - self._cached_at < self._ttl_s:
                return  # another caller refreshed while this one waited
            await self._refresh(now)

    async def _refresh_in_background(self) -> None:
        try:
            await self._refresh_locked()
        except Exception:
            # nobody to raise to: log it and keep what was known
            log.exception("expert discovery failed", extra={"event": "expert_discovery_failed"})

    async def aclose(self) -> None:
        """Stop a refresh still running in the background (at shutdown)."""
        task, self._refreshing = self._refreshing, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
                _node_class(i.meta.get("node_class")),
                _generation(expert_name(i), i.meta.get("generation")),
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

    async def urls(self) -> dict[str, str]:
        """Healthy experts by name (the first listed of each name): what the agent's tools may ask."""
        found: dict[str, str] = {}
        for expert in await self.experts():
            if self.is_healthy(expert):
                found.setdefault(expert.name, expert.url)
        return found

    def snapshot(self) -> list[tuple[ExpertHealth, bool]]:
        """Every endpoint ever seen with whether it counts as healthy now, for status pages."""
        out = []
        for health in self._health.values():
            expert = Expert(health.name, health.url, health.source)
            out.append((ExpertHealth(**vars(health)), self.is_healthy(expert)))
        return out


__all__ = ["ExpertDirectory", "ExpertHealth", "expert_name", "parse_experts"]
