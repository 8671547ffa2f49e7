"""The embedded registry: what a single Consul agent keeps for fleetmind — services, their checks, and a KV
store.

Services come from the orchestrator (each allocation's ``service`` blocks) or from anyone calling the agent
API. Checks start ``critical`` (Consul's default) and are probed by
:func:`~fleetmind.cluster.embedded.checks.run_check`; listeners hear every result, which is how the
orchestrator implements ``check_restart``. All state changes bump one :class:`IndexClock`, served as
``X-Consul-Index``. One node, one datacenter: it is not a distributed store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetmind.cluster.embedded.checks import CRITICAL, PASSING, ProbeResult, run_check
from fleetmind.cluster.embedded.index import IndexClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckDef:
    """What to probe for one service check."""

    name: str
    kind: str  # "http" or "tcp"
    target: str  # URL for http, host:port for tcp
    interval: float  # seconds
    timeout: float  # seconds
    method: str = "GET"
    check_id: str | None = None
    definition: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Check:
    """A registered check and its latest result."""

    id: str
    name: str
    service_id: str
    service_name: str
    service_tags: tuple[str, ...]
    spec: CheckDef
    status: str = CRITICAL
    output: str = ""
    runs: int = 0
    create_index: int = 0
    modify_index: int = 0
    runner: asyncio.Task[None] | None = None


@dataclass
class Service:
    """A registered service instance."""

    id: str
    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    check_ids: list[str] = field(default_factory=list)
    create_index: int = 0
    modify_index: int = 0


@dataclass
class KVEntry:
    key: str
    value: bytes | None
    flags: int = 0
    create_index: int = 0
    modify_index: int = 0
    lock_index: int = 0


class Registry:
    """Services, checks and KV of one embedded Consul-like agent."""

    def __init__(
        self,
        *,
        node_name: str | None = None,
        node_address: str = "127.0.0.1",
        datacenter: str = "dc1",
    ) -> None:
        self.node_name = node_name or socket.gethostname()
        self.node_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, self.node_name))
        self.node_address = node_address
        self.datacenter = datacenter
        self.clock = IndexClock()
        self.services: dict[str, Service] = {}
        self.checks: dict[str, Check] = {}
        self.kv: dict[str, KVEntry] = {}
        self.listeners: list[Callable[[Check], None]] = []
        self._runners: set[asyncio.Task[None]] = set()  # cancelled ones too, so close() can await them
        self._closed = False

    # -- services and checks ------------------------------------------------------------------------------
    def register_service(
        self,
        *,
        name: str,
        service_id: str | None = None,
        address: str = "",
        port: int = 0,
        tags: Iterable[str] = (),
        meta: Mapping[str, str] | None = None,
        checks: Iterable[CheckDef] = (),
    ) -> Service:
        """Add or replace a service (Consul replaces a re-registered ID) and start its checks."""
        if self._closed:
            raise RuntimeError("the registry is shut down")
        sid = service_id or name
        old = self.services.get(sid)
        if old is not None:
            self._drop_checks(old)
        index = self.clock.bump()
        service = Service(
            sid,
            name,
            address,
            int(port),
            tuple(tags),
            dict(meta or {}),
            [],
            old.create_index if old else index,
            index,
        )
        self.services[sid] = service
        specs = list(checks)
        for n, spec in enumerate(specs, start=1):
            cid = spec.check_id or (f"service:{sid}" if len(specs) == 1 else f"service:{sid}:{n}")
            check = Check(cid, spec.name, sid, name, service.tags, spec, create_index=index, modify_index=index)
            check.runner = asyncio.get_running_loop().create_task(
                run_check(
                    kind=spec.kind,
                    target=spec.target,
                    interval=spec.interval,
                    limit_s=spec.timeout,
                    method=spec.method,
                    report=functools.partial(self._report, check),
                ),
                name=f"check {cid}",
            )
            self._runners.add(check.runner)
            check.runner.add_done_callback(self._runners.discard)
            self.checks[cid] = check
            service.check_ids.append(cid)
        log.info("registered service %s (%s) at %s:%s", name, sid, address, port)
        return service

    def deregister_service(self, service_id: str) -> bool:
        service = self.services.pop(service_id, None)
        if service is None:
            return False
        self._drop_checks(service)
        self.clock.bump()
        log.info("deregistered service %s (%s)", service.name, service_id)
        return True

    def _drop_checks(self, service: Service) -> None:
        for cid in service.check_ids:
            check = self.checks.pop(cid, None)
            if check is not None and check.runner is not None:
                check.runner.cancel()

    def _report(self, check: Check, result: ProbeResult) -> None:
        if self.checks.get(check.id) is not check:
            return  # deregistered while the probe was in flight
        check.runs += 1
        if result.status != check.status or result.output != check.output:
            changed = result.status != check.status
            check.status, check.output = result.status, result.output
            if changed:
                # Output alone changes on every probe; only a status change is news to blocking queries.
                check.modify_index = self.clock.bump()
                log.info("check %s of %s is now %s", check.name, check.service_id, check.status)
        for listener in list(self.listeners):
            try:
                listener(check)
            except Exception:
                log.exception("check listener failed")

    def service_checks(self, service_id: str) -> list[Check]:
        service = self.services.get(service_id)
        return [self.checks[c] for c in service.check_ids if c in self.checks] if service else []

    def is_passing(self, service_id: str) -> bool:
        return all(c.status == PASSING for c in self.service_checks(service_id))

    def instances(self, name: str, *, tags: Iterable[str] = (), passing: bool = False) -> list[Service]:
        """Instances of service ``name`` carrying every tag in ``tags`` (and passing all checks, if asked)."""
        wanted = set(tags)
        found = [
            s
            for s in self.services.values()
            if s.name == name and wanted <= set(s.tags) and (not passing or self.is_passing(s.id))
        ]
        return sorted(found, key=lambda s: s.id)

    def catalog(self) -> dict[str, list[str]]:
        """Service name → the union of its instances' tags (Consul's ``/v1/catalog/services``)."""
        out: dict[str, set[str]] = {}
        for service in self.services.values():
            out.setdefault(service.name, set()).update(service.tags)
        return {name: sorted(tags) for name, tags in sorted(out.items())}

    # -- KV -----------------------------------------------------------------------------------------------
    def kv_get(self, key: str) -> KVEntry | None:
        return self.kv.get(key)

    def kv_prefix(self, prefix: str) -> list[KVEntry]:
        return [self.kv[k] for k in sorted(self.kv) if k.startswith(prefix)]

    def kv_put(self, key: str, value: bytes, *, flags: int | None = None, cas: int | None = None) -> bool:
        """Store ``value``; with ``cas`` only if the entry's ModifyIndex equals it (0: only if absent)."""
        old = self.kv.get(key)
        if cas is not None and (old.modify_index if old else 0) != cas:
            return False
        index = self.clock.bump()
        self.kv[key] = KVEntry(
            key,
            value,
            old.flags if flags is None and old else (flags or 0),
            old.create_index if old else index,
            index,
        )
        return True

    def kv_delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        if recurse:
            doomed = [k for k in self.kv if k.startswith(key)]
        else:
            old = self.kv.get(key)
            if cas is not None and (old is None or old.modify_index != cas):
                return False
            doomed = [key] if old else []
        for k in doomed:
            del self.kv[k]
        if doomed:
            self.clock.bump()
        return True

    async def close(self) -> None:
        """Stop every check runner (services stay listed until the process ends)."""
        self._closed = True
        runners = list(self._runners)
        for runner in runners:
            runner.cancel()
        for runner in runners:
            with contextlib.suppress(asyncio.CancelledError):
                await runner
