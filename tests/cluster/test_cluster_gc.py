"""Garbage collection (``PUT /v1/system/gc``) on the embedded orchestrator, through ClusterClient as on Nomad and
checked against HashiCorp's OpenAPI description: a finished batch job's files and record go, a replaced allocation's
folder goes while the log its live successor writes stays, and a running allocation or the newest failed one of a
service job (a person may still read it) keeps everything."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests

from conftest import SEC, OpenAPIContract, RunningCluster, wait_for
from fleetmind.cluster.errors import JobNotFound
from fleetmind.cluster.garbage import ALLOCS

CHATTER = "import sys; [print('chatty line', i) for i in range(int(sys.argv[1]))]"


def _job(job_id: str, code: str, *args: str, kind: str = "service", attempts: int = 0) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Type": kind,
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "RestartPolicy": {"Attempts": attempts, "Interval": 60 * SEC, "Delay": SEC // 10, "Mode": "fail"},
                "Tasks": [
                    {
                        "Name": "t",
                        "Driver": "raw_exec",
                        "Config": {"command": sys.executable, "args": ["-c", code, *args]},
                        "Resources": {"CPU": 100, "MemoryMB": 64},
                        "KillTimeout": SEC,
                    }
                ],
            }
        ],
    }


def _allocs(cluster: RunningCluster, job: str, status: str) -> list[dict[str, Any]]:
    return [a for a in cluster.client.job_allocations(job) if a["ClientStatus"] == status]


def test_gc_removes_dead_allocations_files_and_keeps_live_ones(
    running_cluster: RunningCluster, nomad_openapi: OpenAPIContract
) -> None:
    cluster, client = running_cluster, running_cluster.client
    logs, data = cluster.logs_dir, cluster.logs_dir / ALLOCS
    client.register_job(_job("chatty", CHATTER, "20000", kind="batch"))
    chatty = wait_for(lambda: _allocs(cluster, "chatty", "complete"), what="the batch job done")[0]
    wait_for(lambda: client.job("chatty")["Status"] == "dead", what="the batch job dead")
    sleeper = "import time; time.sleep(3600)"
    client.register_job(_job("keep", sleeper))
    old = wait_for(lambda: _allocs(cluster, "keep", "running"), what="keep running")[0]
    client.register_job(_job("keep", sleeper, "v2"))  # an update: the old allocation is stopped and replaced
    new = wait_for(
        lambda: [a for a in _allocs(cluster, "keep", "running") if a["ID"] != old["ID"]], what="keep's new alloc"
    )[0]
    wait_for(lambda: client.allocation(old["ID"])["ClientStatus"] == "complete", what="the old alloc stopped")
    client.register_job(_job("broken", "import sys; print('cannot start', file=sys.stderr); sys.exit(2)"))
    broken = wait_for(lambda: _allocs(cluster, "broken", "failed"), what="broken failed")[0]
    assert (logs / "chatty.g.t.stdout.log").stat().st_size > 200_000
    assert all((data / a["ID"]).is_dir() for a in (chatty, old, new, broken))

    seen: list[requests.Response] = []
    client.nomad_session.hooks["response"].append(lambda resp, *_a, **_k: seen.append(resp))
    client.collect_garbage()

    (resp,) = seen
    template, operation = nomad_openapi.operation("PUT", urlsplit(str(resp.request.url)).path)
    assert (template, operation["operationId"]) == ("/system/gc", "PutSystemGC")
    assert (resp.request.method, resp.status_code, resp.content) == ("PUT", 200, b"")
    assert "content" not in nomad_openapi.response("PUT", "/v1/system/gc", 200)  # Nomad answers no body either
    # the finished batch job: its folder, its logs and the job itself are gone
    assert not (data / chatty["ID"]).exists() and not list(logs.glob("chatty.*"))
    with pytest.raises(JobNotFound):
        client.job("chatty")
    # the replaced allocation: folder gone, forgotten; the log its successor writes stays
    assert not (data / old["ID"]).exists() and (logs / "keep.g.t.stdout.log").exists()
    assert (data / new["ID"]).is_dir() and client.allocation(new["ID"])["ClientStatus"] == "running"
    assert {a["ID"] for a in client.allocations()} == {new["ID"], broken["ID"]}
    # the newest failed allocation of a service job stays for a person to read
    assert (data / broken["ID"]).is_dir()
    assert "cannot start" in (logs / "broken.g.t.stderr.log").read_text()


def test_gc_wants_put_and_the_token(running_cluster: RunningCluster) -> None:
    url = running_cluster.cluster.nomad_addr + "/v1/system/gc"
    assert httpx.get(url, headers=running_cluster.nomad_headers).status_code == 405
    assert httpx.put(url).status_code == 403
    assert httpx.put(url, headers={"X-Nomad-Token": "wrong"}).status_code == 403
    assert httpx.put(url, headers=running_cluster.nomad_headers).status_code == 200


def test_gc_never_names_a_path_outside_its_folders(tmp_path: Path) -> None:
    from fleetmind.cluster.garbage import alloc_files

    alloc = {"ID": "../escape", "JobID": "../../etc", "TaskGroup": "g", "Name": "x.g[0]", "TaskStates": {"t": {}}}
    assert alloc_files(alloc, tmp_path / "logs", tmp_path / "logs" / ALLOCS) == []
