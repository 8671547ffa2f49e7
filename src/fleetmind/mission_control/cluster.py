"""The cluster as the page shows it: each job's tasks (state, restarts), its services and their health.

It asks the orchestrator and the registry through :class:`fleetmind.cluster.client.ClusterClient` (Nomad and
Consul HTTP APIs, the embedded ones on a single machine), in a worker thread since that client is synchronous.
Answers are reused for ``ttl_s`` so a page refreshing every few seconds costs the orchestrator little, and one
slow orchestrator cannot hold ``/api/status`` for longer than ``timeout_s``: then the view says why it is empty.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fleetmind.mission_control.schemas import ClusterJob, ClusterService, ClusterStatus, ClusterTask


def _collect(client: Any) -> list[ClusterJob]:
    from fleetmind.cluster.causes import task_cause
    from fleetmind.cluster.errors import ClusterError

    jobs: list[ClusterJob] = []
    for stub in sorted(client.jobs(), key=lambda j: j["ID"]):
        detail = client.job(stub["ID"])
        names = [s["Name"] for tg in detail.get("TaskGroups") or [] for s in tg.get("Services") or []]
        services = []
        for name in names:
            try:
                healthy = client.healthy_services(name)
            except ClusterError:
                services.append(ClusterService(name=name, health="unknown", instances=0))
                continue
            services.append(
                ClusterService(name=name, health="passing" if healthy else "critical", instances=len(healthy))
            )
        tasks = [
            ClusterTask(
                alloc=str(alloc.get("ID", ""))[:8],
                task=task,
                state=str(state.get("State", "unknown")),
                failed=bool(state.get("Failed")),
                restarts=int(state.get("Restarts") or 0),
                cause=cause.text if (cause := task_cause(state)) else None,
            )
            for alloc in client.job_allocations(stub["ID"])
            for task, state in sorted((alloc.get("TaskStates") or {}).items())
        ]
        jobs.append(
            ClusterJob(id=stub["ID"], status=str(stub.get("Status", "unknown")), tasks=tasks, services=services)
        )
    return jobs


class ClusterView:
    """Cached, time-bounded snapshots of the cluster for ``/api/status``."""

    def __init__(self, *, ttl_s: float = 2.0, timeout_s: float = 3.0, client: Any = None) -> None:
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._client = client
        self._cached: ClusterStatus | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    def _get_client(self) -> Any:
        if self._client is None:
            from fleetmind.cluster.client import ClusterClient

            self._client = ClusterClient()
        return self._client

    async def snapshot(self) -> ClusterStatus:
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._at < self.ttl_s:
                return self._cached
            client = self._get_client()
            try:
                jobs = await asyncio.wait_for(asyncio.to_thread(_collect, client), self.timeout_s)
                status = ClusterStatus(available=True, orchestrator=client.nomad_addr, jobs=jobs)
            except TimeoutError:
                status = ClusterStatus(
                    available=False, orchestrator=client.nomad_addr, error=f"no answer within {self.timeout_s:g}s"
                )
            except Exception as exc:  # any failure of the orchestrator is shown, not raised at the page
                status = ClusterStatus(available=False, orchestrator=client.nomad_addr, error=str(exc)[:300])
            self._cached, self._at = status, time.monotonic()
            return status
