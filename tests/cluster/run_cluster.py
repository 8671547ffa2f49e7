"""Run an EmbeddedCluster with one job until interrupted, the way `fleetmind up` does (for Ctrl-C/kill tests).

``python run_cluster.py LOGS_DIR JOB_JSON READY_FILE``: starts the cluster on free ports, submits the job
through ClusterClient, writes READY_FILE once the job's allocation runs, then waits; SIGINT sets a stop event through
``loop.add_signal_handler`` and the ``finally`` stops the cluster, as the CLI does. (A plain ``signal.signal``
handler, asyncio.run's own, can miss a signal the kernel hands to another thread while the loop sleeps.)
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from fleetmind.cluster.client import ClusterClient
from fleetmind.cluster.embedded import EmbeddedCluster


async def main(logs: Path, job: dict[str, object], ready: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cluster = EmbeddedCluster(logs_dir=logs, nomad_port=0, consul_port=0)
    await cluster.start()
    try:
        with ClusterClient(
            consul_addr=cluster.consul_addr, nomad_addr=cluster.nomad_addr, token=cluster.token
        ) as client:
            await asyncio.to_thread(client.register_job, job)
            while True:
                allocs = await asyncio.to_thread(client.job_allocations, str(job["ID"]))
                if allocs and allocs[0]["ClientStatus"] == "running":
                    break
                await asyncio.sleep(0.05)
        await asyncio.to_thread(ready.write_text, "ready")
        await stop.wait()
    finally:
        await cluster.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])))
