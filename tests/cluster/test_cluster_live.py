"""The ClusterClient calls the rest of fleetmind makes, against a real Nomad and Consul when asked, else skipped.

Opt in with dedicated variables, never NOMAD_ADDR/CONSUL_HTTP_ADDR (the e2e tests set those for their subprocesses,
and a stray one in a shell must not send test jobs to a production cluster)::

    FLEETMIND_LIVE_CONSUL_ADDR=http://10.0.0.1:8500 FLEETMIND_LIVE_NOMAD_ADDR=http://10.0.0.1:4646 \\
        .venv/bin/pytest tests/cluster/test_cluster_live.py -v

Each variable enables its half (Consul: services and KV; Nomad: jobs and allocations). CONSUL_HTTP_TOKEN / NOMAD_TOKEN
are used when ACLs are on. Everything is created under unique ``fleetmind-live-test-*`` names and removed again; the
job is a one-task ``raw_exec`` ``sleep``, so a Nomad client needs the raw_exec plugin enabled (as fleetmind's jobs do);
set FLEETMIND_LIVE_DATACENTER if the cluster's datacenter is not ``dc1``.
The same test bodies also run against the embedded cluster every time, so what a live run checks is known to pass
here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import SEC, RunningCluster, wait_for
from fleetmind.cluster.client import ClusterClient, JobNotFound

LIVE_CONSUL = "FLEETMIND_LIVE_CONSUL_ADDR"
LIVE_NOMAD = "FLEETMIND_LIVE_NOMAD_ADDR"
LIVE_DC = "FLEETMIND_LIVE_DATACENTER"


def _client(request: pytest.FixtureRequest, variable: str) -> Iterator[ClusterClient]:
    if request.param == "embedded":
        running: RunningCluster = request.getfixturevalue("running_cluster")
        yield running.client
        return
    addr = os.environ.get(variable)
    if not addr:
        agent = "Consul" if variable == LIVE_CONSUL else "Nomad"
        pytest.skip(f"no live {agent}: set {variable} to its HTTP address to run this (see the module docstring)")
    kwargs = {"consul_addr": addr} if variable == LIVE_CONSUL else {"nomad_addr": addr}
    with ClusterClient(**kwargs) as client:
        yield client


@pytest.fixture(params=["embedded", "live"])
def consul_client(request: pytest.FixtureRequest) -> Iterator[ClusterClient]:
    yield from _client(request, LIVE_CONSUL)


@pytest.fixture(params=["embedded", "live"])
def nomad_client(request: pytest.FixtureRequest) -> Iterator[ClusterClient]:
    yield from _client(request, LIVE_NOMAD)


def _name() -> str:
    return f"fleetmind-live-test-{uuid.uuid4().hex[:8]}"


def test_service_register_find_deregister(consul_client: ClusterClient) -> None:
    name, tag = _name(), f"fleetmind-live-{uuid.uuid4().hex[:6]}"
    consul_client.register_service(
        name, service_id=name, address="127.0.0.1", port=40123, tags=[tag, "expert"], meta={"expert": "live"}
    )
    try:
        found = wait_for(lambda: consul_client.healthy_services(name), timeout=15, what=f"{name} registered")
        assert [(s.id, s.address, s.port, s.meta) for s in found] == [(name, "127.0.0.1", 40123, {"expert": "live"})]
        assert [s.id for s in consul_client.services_by_tag(tag)] == [name]
    finally:
        assert consul_client.deregister_service(name)
    wait_for(lambda: consul_client.healthy_services(name) == [], timeout=15, what=f"{name} gone")


def test_kv_put_get_delete(consul_client: ClusterClient) -> None:
    prefix = _name()
    try:
        consul_client.kv_put(f"{prefix}/a", b"\x00binary\xff")
        consul_client.kv_put(f"{prefix}/b", b"")
        assert consul_client.kv_get(f"{prefix}/a") == b"\x00binary\xff"
        assert consul_client.kv_get(f"{prefix}/b") == b""
        assert consul_client.kv_get(f"{prefix}/missing") is None
    finally:
        consul_client.kv_delete(prefix, recurse=True)
    assert consul_client.kv_get(f"{prefix}/a") is None


def _sleep_job(job_id: str) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Name": job_id,
        "Type": "service",
        "Datacenters": [os.environ.get(LIVE_DC, "dc1")],
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "RestartPolicy": {"Attempts": 1, "Interval": 60 * SEC, "Delay": SEC, "Mode": "fail"},
                "Tasks": [
                    {
                        "Name": "sleep",
                        "Driver": "raw_exec",
                        "Config": {"command": "/bin/sleep", "args": ["300"]},
                        "Resources": {"CPU": 20, "MemoryMB": 16},
                    }
                ],
            }
        ],
    }


def test_job_register_list_allocations_stop(nomad_client: ClusterClient) -> None:
    job_id = _name()
    try:
        registered = nomad_client.register_job(_sleep_job(job_id))
        assert registered["EvalID"] and registered["JobModifyIndex"] >= 1
        assert job_id in [j["ID"] for j in nomad_client.jobs()]
        assert nomad_client.job(job_id)["TaskGroups"][0]["Tasks"][0]["Driver"] == "raw_exec"
        allocs = wait_for(lambda: nomad_client.job_allocations(job_id), timeout=30, what=f"an allocation of {job_id}")
        assert all(a["JobID"] == job_id for a in allocs)
        alloc = nomad_client.allocation(allocs[0]["ID"])
        assert (alloc["ID"], alloc["TaskGroup"]) == (allocs[0]["ID"], "g")
    finally:
        nomad_client.stop_job(job_id, purge=True)
    with pytest.raises(JobNotFound):
        nomad_client.job(job_id)
