"""The one client fleetmind uses to find services and manage jobs, on a real cluster or on the embedded one.

It speaks Consul's and Nomad's HTTP APIs through the standard clients (py-consul, python-nomad). The target is chosen
the way HashiCorp's own tools choose it: ``CONSUL_HTTP_ADDR`` (``host:port`` or a URL) and ``NOMAD_ADDR`` (a URL).
The embedded orchestrator answers the same routes, so this code is the same on one machine and on many.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import consul

DEFAULT_CONSUL_ADDR = "127.0.0.1:8500"
DEFAULT_NOMAD_ADDR = "http://127.0.0.1:4646"


class ClusterError(RuntimeError):
    """Base class of this package's errors."""


class RegistryUnavailable(ClusterError):
    """The registry could not be reached or answered with an error."""


@dataclass(frozen=True)
class ServiceInstance:
    """One healthy instance of a service, as the registry reports it."""

    name: str
    id: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"


def split_addr(addr: str, default_scheme: str = "http") -> tuple[str, str, int]:
    """``host:port`` or ``scheme://host:port`` → (scheme, host, port)."""
    if "://" not in addr:
        addr = f"{default_scheme}://{addr}"
    parts = urlsplit(addr)
    if not parts.hostname or not parts.port:
        raise ValueError(f"address {addr!r} needs a host and a port")
    return parts.scheme, parts.hostname, parts.port


class ClusterClient:
    """Service discovery (Consul API) and, later, jobs (Nomad API) against ``consul_addr``/``nomad_addr``."""

    def __init__(self, *, consul_addr: str | None = None, nomad_addr: str | None = None) -> None:
        self.consul_addr = consul_addr or os.environ.get("CONSUL_HTTP_ADDR") or DEFAULT_CONSUL_ADDR
        self.nomad_addr = nomad_addr or os.environ.get("NOMAD_ADDR") or DEFAULT_NOMAD_ADDR
        scheme, host, port = split_addr(self.consul_addr)
        self._consul = consul.Consul(host=host, port=port, scheme=scheme, token=os.environ.get("CONSUL_HTTP_TOKEN"))

    @staticmethod
    def _instance(entry: dict[str, Any]) -> ServiceInstance:
        svc = entry["Service"]
        address = svc.get("Address") or entry.get("Node", {}).get("Address") or "127.0.0.1"
        return ServiceInstance(
            name=svc["Service"],
            id=svc["ID"],
            address=address,
            port=int(svc["Port"]),
            tags=tuple(svc.get("Tags") or ()),
            meta=dict(svc.get("Meta") or {}),
        )

    def healthy_services(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]:
        """Instances of ``name`` whose checks all pass (Consul ``/v1/health/service/:name?passing``)."""
        try:
            _, entries = self._consul.health.service(name, passing=True, tag=tag)
        except Exception as exc:  # py-consul raises requests and consul errors alike
            raise RegistryUnavailable(f"registry at {self.consul_addr} did not answer: {exc}") from exc
        return [self._instance(e) for e in entries]

    def services_by_tag(self, tag: str) -> list[ServiceInstance]:
        """Healthy instances of every service carrying ``tag`` (catalog listing, then health per service)."""
        try:
            _, services = self._consul.catalog.services()
        except Exception as exc:
            raise RegistryUnavailable(f"registry at {self.consul_addr} did not answer: {exc}") from exc
        found: list[ServiceInstance] = []
        for name, tags in sorted(services.items()):
            if tag in (tags or []):
                found.extend(self.healthy_services(name, tag=tag))
        return found

    async def ahealthy_services(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]:
        return await asyncio.to_thread(self.healthy_services, name, tag=tag)

    async def aservices_by_tag(self, tag: str) -> list[ServiceInstance]:
        return await asyncio.to_thread(self.services_by_tag, tag)
