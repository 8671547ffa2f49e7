"""100 nodes calling home at once (plus repeats) against the served API: one valid inventory, no job lost."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from fleetmind.provisioning.inventory import Inventory
from fleetmind.provisioning.store import JobStore
from tests.conftest import stop_process
from tests.provisioning.conftest import Server, server_env, start_server, token_for

NODES = 100
REPEATS = 40


def _payload(i: int) -> dict[str, object]:
    return {
        "hostname": f"node-{i:03d}",
        "ip": f"10.1.{i // 200}.{i % 200 + 1}",
        "mac": f"52:54:00:00:{i // 256:02x}:{i % 256:02x}",
        "facts": {"cores": 1 + i % 8, "ram_mb": 1024, "cpu_flags": ["sse2"]},
    }


async def _storm(url: str, token: str) -> list[tuple[str, int, dict[str, object]]]:
    calls = [_payload(i) for i in range(NODES)] + [_payload(i) for i in range(REPEATS)]
    random.Random(7).shuffle(calls)
    limits = httpx.Limits(max_connections=len(calls))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(payload: dict[str, object]) -> tuple[str, int, dict[str, object]]:
            r = await client.post(
                "/api/ready-for-provisioning", json=payload, headers={"Authorization": f"Bearer {token}"}
            )
            return str(payload["hostname"]), r.status_code, r.json()

        return await asyncio.gather(*(one(p) for p in calls))


def test_100_concurrent_call_homes(tmp_path: Path, servers: list[Server]) -> None:
    env = server_env(tmp_path, "quick.yaml", FLEETMIND_PROVISION_CONCURRENCY="1")
    token = token_for(env)
    server = start_server(env, tmp_path / "server.log")
    servers.append(server)

    results = asyncio.run(_storm(server.url, token))

    assert {code for _, code, _ in results} <= {202, 409}, [r for r in results if r[1] not in (202, 409)]
    accepted: dict[str, list[str]] = {}
    for host, code, answer in results:
        if code == 202:
            assert answer["hostname"] == host
            accepted.setdefault(host, []).append(str(answer["job_id"]))
        else:
            assert answer["error"]["code"] == "job_in_progress"  # type: ignore[index]
    assert len(accepted) == NODES  # every node got in at least once

    stop_process(server.proc)  # a clean stop: running jobs end interrupted, queued ones stay queued

    inventory = Path(env["FLEETMIND_PROVISION_INVENTORY_PATH"])
    hosts = Inventory(inventory, roles=["worker", "control"]).hosts()
    assert sorted(hosts) == [f"node-{i:03d}" for i in range(NODES)]
    assert hosts["node-042"].ip == "10.1.0.43" and hosts["node-042"].mac == "52:54:00:00:00:2a"
    # and Ansible itself reads it: exactly 100 hosts, all in the worker group
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parsed = json.loads(listed.stdout)
    assert len(parsed["_meta"]["hostvars"]) == NODES
    assert sorted(parsed["worker"]["hosts"]) == sorted(hosts)

    store = JobStore(Path(env["FLEETMIND_PROVISION_DB_PATH"]))
    try:
        jobs = store.jobs(limit=None)
    finally:
        store.close()
    # each accepted call-home is exactly one recorded job, and there is no other
    assert sorted(j.id for j in jobs) == sorted(i for ids in accepted.values() for i in ids)
    assert Counter(j.hostname for j in jobs) == Counter({h: len(ids) for h, ids in accepted.items()})
    assert {j.state for j in jobs} <= {"queued", "successful", "interrupted"}
