"""Finding the agent and the experts: a fixed URL, or the registry (Consul API) with a short cache.

The agent may still be starting when the first request arrives (``fleetmind up`` starts everything at once),
so :meth:`AgentLocator.agent_url` keeps asking with growing pauses until ``discovery_timeout_s`` and only then
gives up with a 503 that says what it looked for and where. The expert list feeds ``/v1/models`` and model
checks; a registry that does not answer there just means "no experts known", because ``fleetmind`` itself is
always a model.

The gateway sends its service credential to the agent, so it only calls an agent instance whose registration
proves it was made with the stack's secret (:func:`fleetmind.security.service.proven`): a ``pipecatapp`` that
any local process registers is ignored (and logged). A fixed ``agent_url`` is the operator's word and not checked.
The expert list holds proven experts only, the ones the agent routes to.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Protocol

from fleetmind.cluster.client import ClusterClient, ClusterError, ServiceInstance
from fleetmind.contracts.names import EXPERT_TAG, ROUTED_MODEL, expert_name
from fleetmind.gateway.errors import AgentUnavailableError
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.security.service import SecretSource, only_proven

log = logging.getLogger(__name__)


class Registry(Protocol):
    """What the locator needs from :class:`~fleetmind.cluster.client.ClusterClient`."""

    async def ahealthy_services(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]: ...

    async def aservices_by_tag(self, tag: str) -> list[ServiceInstance]: ...


def expert_names(instances: list[ServiceInstance]) -> list[str]:
    """Every expert's name (:func:`~fleetmind.contracts.names.expert_name`), sorted, without duplicates."""
    return sorted({expert_name(inst.name, inst.tags) for inst in instances})


class AgentLocator:
    """Answers "where is the agent?" and "which experts exist?" for the gateway."""

    def __init__(
        self, settings: GatewaySettings, *, registry: Registry | None = None, secret: SecretSource | None = None
    ) -> None:
        self.settings = settings
        self._registry = registry
        self._secret = secret or SecretSource()
        self._agent: tuple[str, float] | None = None  # (url, expires at, monotonic)
        self._experts: tuple[list[str], float] | None = None
        self._lock = asyncio.Lock()

    @property
    def registry(self) -> Registry:
        # built on first use so a gateway with a fixed agent URL never touches the registry for the agent
        if self._registry is None:
            self._registry = ClusterClient(consul_addr=self.settings.consul_addr)
        return self._registry

    def describe(self) -> str:
        if self.settings.agent_url:
            return f"the agent at {self.settings.agent_url}"
        addr = getattr(self.registry, "consul_addr", "the registry")
        return f"a healthy '{self.settings.agent_service}' service in the registry at {addr}"

    def forget(self, url: str) -> None:
        """Drop a cached URL that just failed, so the next call asks the registry again."""
        if self._agent and self._agent[0] == url:
            self._agent = None

    async def _lookup(self) -> str | None:
        listed = await self.registry.ahealthy_services(self.settings.agent_service)
        secret = self._secret.get()
        instances = only_proven(secret, listed)
        if not instances:
            return None
        # spread load over instances; the cache keeps one client on one instance for a few seconds
        return random.choice(instances).url

    async def agent_url(self, *, deadline: float | None = None) -> str:
        """The agent's base URL, waiting with backoff until ``deadline`` (monotonic) for a healthy one."""
        if self.settings.agent_url:
            return self.settings.agent_url
        now = time.monotonic()
        if self._agent and self._agent[1] > now:
            return self._agent[0]
        if deadline is None:
            deadline = now + self.settings.discovery_timeout_s
        delay = 0.1
        last_error = "no instance is registered and passing its health checks"
        async with self._lock:
            while True:
                if self._agent and self._agent[1] > time.monotonic():
                    return self._agent[0]  # another request found it while we waited for the lock
                try:
                    url = await self._lookup()
                except ClusterError as exc:
                    url, last_error = None, str(exc)
                if url:
                    self._agent = (url, time.monotonic() + self.settings.registry_ttl_s)
                    return url
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AgentUnavailableError(
                        f"No agent is available: looked for {self.describe()} for "
                        f"{self.settings.discovery_timeout_s:g}s ({last_error}). Is the agent running?"
                    )
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 1.0)

    async def experts(self) -> list[str]:
        """Expert names the registry knows (cached ``registry_ttl_s``); empty when it cannot be asked."""
        now = time.monotonic()
        if self._experts and self._experts[1] > now:
            return list(self._experts[0])
        try:
            # only experts that prove the stack's secret: the agent would not call the others either
            secret = self._secret.get()
            names = expert_names(only_proven(secret, await self.registry.aservices_by_tag(EXPERT_TAG)))
        except ClusterError as exc:
            log.info("expert list unavailable: %s", exc)
            names = []
        self._experts = (names, now + self.settings.registry_ttl_s)
        return list(names)

    async def models(self) -> list[str]:
        """Every model id a client may ask for: the routed agent first, then the experts."""
        return [ROUTED_MODEL, *(n for n in await self.experts() if n != ROUTED_MODEL)]
