"""The embedded orchestrator's garbage collection (Nomad's ``PUT /v1/system/gc``), a mixin of
:class:`~fleetmind.cluster.embedded.orchestrator.Orchestrator`.

By :mod:`fleetmind.cluster.garbage`'s rule: the files of terminal allocations that are garbage (their folder under
the data dir, their tasks' logs unless a kept allocation of the same slot writes them) are deleted, the allocations
are forgotten, and a job that is garbage (dead, and stopped or batch) is purged once none of its allocations is
left, as Nomad's forced collection does. It runs under the scheduler's lock, so no allocation is placed, and no log
reopened, while files go; the deleting runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from fleetmind.cluster import garbage
from fleetmind.cluster.embedded.allocation import AllocRunner
from fleetmind.cluster.embedded.index import IndexClock
from fleetmind.cluster.embedded.views import JobRecord

log = logging.getLogger(__name__)


class OrchestratorGC:
    jobs: dict[str, JobRecord]
    allocs: dict[str, AllocRunner]
    clock: IndexClock
    logs_dir: Path
    data_dir: Path
    _lock: asyncio.Lock

    def job_list(self, prefix: str = "") -> list[dict[str, Any]]:
        raise NotImplementedError  # OrchestratorViews

    async def collect_garbage(self) -> dict[str, int]:
        """Collect now; returns how many allocations and jobs went and the bytes their files took."""
        async with self._lock:
            jobs = {j["ID"]: j for j in self.job_list()}
            ids, paths = garbage.garbage((a.stub() for a in self.allocs.values()), jobs, self.logs_dir, self.data_dir)
            freed = await asyncio.to_thread(garbage.disk_bytes, paths)
            await asyncio.to_thread(garbage.remove, paths)
            for alloc_id in ids:
                alloc = self.allocs.pop(alloc_id)
                record = self.jobs.get(alloc.job["ID"])
                if record is not None and alloc_id in record.allocs:
                    record.allocs.remove(alloc_id)
            left = {a.job["ID"] for a in self.allocs.values()}
            purged = [j for j, stub in jobs.items() if garbage.job_is_garbage(stub) and j not in left]
            for job_id in purged:
                self.jobs.pop(job_id, None)
            self.clock.bump()
        log.info("garbage collection: %d allocations, %d jobs, %d bytes", len(ids), len(purged), freed)
        return {"allocations": len(ids), "jobs": len(purged), "bytes": freed}
