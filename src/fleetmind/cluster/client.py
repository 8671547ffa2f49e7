"""The one client fleetmind uses to find services and manage jobs, on a real cluster or on the embedded one.

It speaks Consul's and Nomad's HTTP APIs through the standard clients (py-consul, python-nomad). The target
is chosen the way HashiCorp's own tools choose it: ``CONSUL_HTTP_ADDR`` (``host:port`` or a URL) and
``NOMAD_ADDR`` (a URL), with ``CONSUL_HTTP_TOKEN`` / ``NOMAD_TOKEN`` as the ACL token (the embedded
cluster always wants one; without the variables the token file in the state dir is used, see
:mod:`fleetmind.cluster.token`). The embedded orchestrator answers the same routes, so this code is the same
on one machine and on many. Failures come out
as the package's errors (:mod:`fleetmind.cluster.errors`): an unreachable agent, an unknown job, or a
request the agent refused.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import consul
import nomad
import nomad.api.exceptions as nomad_errors
import requests

from fleetmind.cluster import log_tail
from fleetmind.cluster.errors import (
    ClusterError,
    JobNotFound,
    JobRejected,
    JobSpecError,
    OrchestratorUnavailable,
    RegistryUnavailable,
)
from fleetmind.cluster.token import CONSUL_TOKEN_ENV, NOMAD_TOKEN_ENV, client_token
from fleetmind.stack_settings import default_consul_addr, default_nomad_addr

__all__ = [
    "ClusterClient",
    "ClusterError",
    "JobNotFound",
    "JobRejected",
    "JobSpecError",
    "OrchestratorUnavailable",
    "RegistryUnavailable",
    "ServiceInstance",
    "split_addr",
]

DEFAULT_CONSUL_ADDR = default_consul_addr()
DEFAULT_NOMAD_ADDR = default_nomad_addr()


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
    """Service discovery and KV (Consul API) and jobs (Nomad API) against ``consul_addr``/``nomad_addr``."""

    def __init__(
        self, *, consul_addr: str | None = None, nomad_addr: str | None = None, token: str | None = None
    ) -> None:
        """``token`` is sent to both APIs; without it, ``NOMAD_TOKEN`` / ``CONSUL_HTTP_TOKEN`` or the token file."""
        self.consul_addr = consul_addr or os.environ.get("CONSUL_HTTP_ADDR") or DEFAULT_CONSUL_ADDR
        self.nomad_addr = nomad_addr or os.environ.get("NOMAD_ADDR") or DEFAULT_NOMAD_ADDR
        self.nomad_token = token or client_token(NOMAD_TOKEN_ENV)
        consul_token = token or client_token(CONSUL_TOKEN_ENV)
        scheme, host, port = split_addr(self.consul_addr)
        self._consul = consul.Consul(host=host, port=port, scheme=scheme, token=consul_token)
        nomad_scheme, nomad_host, nomad_port = split_addr(self.nomad_addr)
        # One session for every Nomad endpoint: pooled connections, and one place to hook (tests) or close.
        self.nomad_session = requests.Session()
        self._nomad = nomad.Nomad(
            address=f"{nomad_scheme}://{nomad_host}:{nomad_port}",
            token=self.nomad_token,
            timeout=10,
            session=self.nomad_session,
        )

    def close(self) -> None:
        """Close pooled HTTP connections (the client still works afterwards; it reconnects)."""
        self.nomad_session.close()
        session = getattr(getattr(self._consul, "http", None), "session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

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

    def service_checks(self, name: str) -> list[dict[str, Any]]:
        """Every instance of ``name``, healthy or not, with its checks (Consul ``/v1/health/service/:name``):
        ``{"ServiceID", "Status"`` (the worst check: passing, warning or critical) ``, "Output"}`` each."""
        try:
            _, entries = self._consul.health.service(name)
        except Exception as exc:
            raise RegistryUnavailable(f"registry at {self.consul_addr} did not answer: {exc}") from exc
        order = {"passing": 0, "warning": 1, "critical": 2}
        out = []
        for entry in entries:
            checks = [c for c in entry.get("Checks") or [] if c.get("ServiceID")]
            worst = max(checks, key=lambda c: order.get(str(c.get("Status")), 2), default=None)
            out.append(
                {
                    "ServiceID": entry["Service"]["ID"],
                    "Status": str(worst.get("Status")) if worst else "passing",
                    "Output": str(worst.get("Output") or "")[:500] if worst else "",
                }
            )
        return out

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

    # -- jobs (Nomad API) ---------------------------------------------------------------------------------
    def _nomad_call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except nomad_errors.URLNotFoundNomadException as exc:
            raise JobNotFound(f"{what}: not found at {self.nomad_addr} ({_nomad_text(exc)})") from exc
        except nomad_errors.BadRequestNomadException as exc:
            raise JobRejected(f"{what}: refused by {self.nomad_addr}: {_nomad_text(exc)}") from exc
        except nomad_errors.URLNotAuthorizedNomadException as exc:
            raise OrchestratorUnavailable(
                f"{what}: {self.nomad_addr} refused the token ({_nomad_text(exc)}); set NOMAD_TOKEN"
            ) from exc
        except nomad_errors.BaseNomadException as exc:
            raise OrchestratorUnavailable(
                f"{what}: orchestrator at {self.nomad_addr} failed: {_nomad_text(exc)}"
            ) from exc

    def register_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """Submit (or update) a job given as Nomad API JSON (what :func:`.jobspec.load_job` returns).

        The JSON is sent wrapped in ``{"Job": ...}`` as the API wants it.

        Returns Nomad's ``JobRegisterResponse`` (``EvalID``, ``JobModifyIndex``, ``Warnings``).
        """
        if not isinstance(job, dict) or not job.get("ID"):
            raise JobRejected("register_job needs a Nomad API Job with an ID (not wrapped in {'Job': ...})")
        return dict(self._nomad_call(f"register job {job['ID']}", lambda: self._nomad.jobs.register_job({"Job": job})))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job (Nomad ``JobListStub``: ID, Status, JobSummary ...)."""
        return list(self._nomad_call("list jobs", self._nomad.jobs.get_jobs))

    def job(self, job_id: str) -> dict[str, Any]:
        """One job with its status. Raises :class:`JobNotFound`."""
        return dict(self._nomad_call(f"job {job_id}", lambda: self._nomad.job.get_job(job_id)))

    def job_allocations(self, job_id: str) -> list[dict[str, Any]]:
        """The job's allocations (``AllocationListStub``: ClientStatus, TaskStates, Restarts, Events)."""
        return list(self._nomad_call(f"allocations of job {job_id}", lambda: self._nomad.job.get_allocations(job_id)))

    def allocation(self, alloc_id: str) -> dict[str, Any]:
        """One allocation in full (``Allocation``)."""
        return dict(self._nomad_call(f"allocation {alloc_id}", lambda: self._nomad.allocation.get_allocation(alloc_id)))

    def allocations(self) -> list[dict[str, Any]]:
        """Every allocation of the cluster (``AllocationListStub``), newest first."""
        return list(self._nomad_call("list allocations", self._nomad.allocations.get_allocations))

    def collect_garbage(self) -> None:
        """Nomad's forced garbage collection (``PUT /v1/system/gc``, a management token on Nomad): the files and
        records of terminal allocations and dead jobs go (:mod:`fleetmind.cluster.garbage` says which)."""
        self._nomad_call("garbage collection", self._nomad.system.initiate_garbage_collection)

    def task_logs(
        self, alloc_id: str, task: str, kind: str = "stderr", *, max_bytes: int = log_tail.LOG_TAIL_BYTES
    ) -> str:
        """The last ``max_bytes`` of task ``task``'s ``kind`` log (stdout or stderr) in allocation ``alloc_id``
        (Nomad's ``GET /v1/client/fs/logs/:alloc_id``, ``origin=end``, ``plain=true``; the embedded orchestrator
        serves the same route). Decoded as UTF-8 (bad bytes replaced); when the tail starts inside a line, that partial
        first line is dropped. Reads at most about twice ``max_bytes`` from the wire, whatever the server sends."""
        params = log_tail.tail_params(task, kind, max_bytes)
        want = max_bytes + 1

        def read() -> bytes:
            resp = self._nomad.client.stream_logs.request(alloc_id, params=params, method="get", stream=True)
            try:
                return log_tail.read_bounded(resp.iter_content(chunk_size=min(want, 65536)), want)
            except requests.RequestException as exc:  # the connection broke while the log was read
                raise nomad_errors.BaseNomadException(exc) from exc
            finally:
                resp.close()

        data = self._nomad_call(f"{kind} log of task {task} in allocation {alloc_id}", read)
        return log_tail.cut_tail(data, max_bytes)

    def job_versions(self, job_id: str) -> list[dict[str, Any]]:
        """Every kept version of the job (Nomad ``Job``), newest first."""
        answer = self._nomad_call(f"versions of job {job_id}", lambda: self._nomad.job.get_versions(job_id))
        return list(answer.get("Versions") or [])

    def revert_job(self, job_id: str, version: int, *, enforce_prior_version: int | None = None) -> dict[str, Any]:
        """Register an older version again (as a new version). Returns ``JobRegisterResponse``."""
        return dict(
            self._nomad_call(
                f"revert job {job_id} to version {version}",
                lambda: self._nomad.job.revert_job(job_id, version, enforce_prior_version),
            )
        )

    def stop_allocation(self, alloc_id: str) -> dict[str, Any]:
        """Stop one allocation; the scheduler places a replacement (``AllocStopResponse``: EvalID, Index)."""
        return dict(
            self._nomad_call(f"stop allocation {alloc_id}", lambda: self._nomad.allocation.stop_allocation(alloc_id))
        )

    def stop_job(self, job_id: str, purge: bool = False) -> dict[str, Any]:
        """Stop every allocation of the job; ``purge`` also forgets it. Returns ``JobDeregisterResponse``."""
        return dict(
            self._nomad_call(f"stop job {job_id}", lambda: self._nomad.job.deregister_job(job_id, purge=purge or None))
        )

    # -- nodes (Nomad API): what the power agent needs to drain a node before it sleeps ------------------
    def nodes(self) -> list[dict[str, Any]]:
        """Every client node (``NodeListStub``: ID, Name, Status, Drain, SchedulingEligibility ...)."""
        return list(self._nomad_call("list nodes", self._nomad.nodes.get_nodes))

    def node_allocations(self, node_id: str) -> list[dict[str, Any]]:
        """The allocations placed on a node (``Allocation``: ClientStatus, JobID ...)."""
        return list(
            self._nomad_call(f"allocations of node {node_id}", lambda: self._nomad.node.get_allocations(node_id))
        )

    def drain_node(self, node_id: str, *, deadline_s: float = 300.0) -> dict[str, Any]:
        """Start draining a node: nothing new is placed on it and its allocations move (``NodeDrainUpdateResponse``)."""
        spec = {"Deadline": int(deadline_s * 1e9), "IgnoreSystemJobs": False}
        return dict(
            self._nomad_call(f"drain node {node_id}", lambda: self._nomad.node.drain_node_with_spec(node_id, spec))
        )

    def undrain_node(self, node_id: str) -> dict[str, Any]:
        """Stop a drain and make the node eligible for placements again."""
        return dict(
            self._nomad_call(
                f"undrain node {node_id}", lambda: self._nomad.node.drain_node_with_spec(node_id, None, True)
            )
        )

    def node(self, node_id: str) -> dict[str, Any]:
        """One node in full (``Node``: Meta with the placement class, Attributes, SchedulingEligibility ...)."""
        return dict(self._nomad_call(f"node {node_id}", lambda: self._nomad.node.get_node(node_id)))

    def set_node_eligibility(self, node_id: str, *, eligible: bool) -> dict[str, Any]:
        """Let the scheduler place new work on a node, or not (``NodeEligibilityUpdateResponse``)."""
        return dict(
            self._nomad_call(
                f"set eligibility of node {node_id}",
                lambda: self._nomad.node.eligible_node(node_id, eligible=eligible),
            )
        )

    # -- evaluations (Nomad API): why a job was or was not placed ----------------------------------------
    def evaluation(self, eval_id: str) -> dict[str, Any]:
        """One evaluation (``Evaluation``: Status, StatusDescription, FailedTGAllocs with ConstraintFiltered)."""
        return dict(self._nomad_call(f"evaluation {eval_id}", lambda: self._nomad.evaluation.get_evaluation(eval_id)))

    def job_evaluations(self, job_id: str) -> list[dict[str, Any]]:
        """The job's evaluations, newest first."""
        return list(self._nomad_call(f"evaluations of job {job_id}", lambda: self._nomad.job.get_evaluations(job_id)))

    # -- KV and service registration (Consul API) ---------------------------------------------------------
    def _consul_call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:  # py-consul raises requests and consul errors alike
            raise RegistryUnavailable(f"{what}: registry at {self.consul_addr} failed: {exc}") from exc

    def kv_get(self, key: str) -> bytes | None:
        """The value at ``key``, or None when there is none."""
        _, entry = self._consul_call(f"kv get {key}", lambda: self._consul.kv.get(key))
        if entry is None:
            return None
        value = entry.get("Value")
        return bytes(value) if value is not None else b""

    def kv_put(self, key: str, value: bytes) -> None:
        if not self._consul_call(f"kv put {key}", lambda: self._consul.kv.put(key, bytes(value))):
            raise ClusterError(f"registry at {self.consul_addr} did not store {key}")

    def kv_delete(self, key: str, *, recurse: bool = False) -> None:
        self._consul_call(f"kv delete {key}", lambda: self._consul.kv.delete(key, recurse=recurse or None))

    def register_service(
        self,
        name: str,
        *,
        service_id: str | None = None,
        address: str | None = None,
        port: int | None = None,
        tags: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        http_check: str | None = None,
        tcp_check: str | None = None,
        interval: str = "10s",
        timeout: str = "5s",
    ) -> None:
        """Register a service with the local agent, with an optional HTTP (URL) or TCP (host:port) check."""
        check: dict[str, Any] | None = None
        if http_check:
            check = consul.Check.http(http_check, interval, timeout=timeout)
        elif tcp_check:
            host, _, tcp_port = tcp_check.rpartition(":")
            check = consul.Check.tcp(host, int(tcp_port), interval, timeout=timeout)
        ok = self._consul_call(
            f"register service {name}",
            lambda: self._consul.agent.service.register(
                name,
                service_id=service_id,
                address=address,
                port=port,
                tags=list(tags) or None,
                meta=dict(meta) if meta else None,
                check=check,
            ),
        )
        if not ok:
            raise ClusterError(f"registry at {self.consul_addr} refused service {name}")

    def deregister_service(self, service_id: str) -> bool:
        """Remove a service (by ID) from the local agent; False when it was not registered."""
        return bool(
            self._consul_call(
                f"deregister service {service_id}", lambda: self._consul.agent.service.deregister(service_id)
            )
        )


def _nomad_text(exc: Exception) -> str:
    resp = getattr(exc, "nomad_resp", None)
    text = getattr(resp, "text", None)
    return str(text).strip() if text else str(resp or exc)
