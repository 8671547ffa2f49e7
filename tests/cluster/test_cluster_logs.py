"""A task's logs over Nomad's API (``GET /v1/client/fs/logs/:alloc_id``): ClusterClient.task_logs against the
embedded orchestrator, every exchange checked against the route's contract (contracts/nomad-client-fs-logs.yaml,
written from Nomad's API documentation and handler: HashiCorp's OpenAPI description has no client routes), the
framed answer, Nomad's 400s, the token, and the tail's bound."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import requests

from conftest import HERE, SEC, OpenAPIContract, RunningCluster, wait_for
from fleetmind.cluster.errors import JobNotFound, JobRejected

LOGS_CONTRACT = HERE / "contracts" / "nomad-client-fs-logs.yaml"
# 300 numbered lines on stdout, then a last word on stderr, then it waits to be stopped
SPEAKER = (
    "import sys, time\n"
    "for i in range(300): print(f'line {i:03d} ' + 'x' * 40)\n"
    "sys.stdout.flush()\n"
    "print('café: the last word', file=sys.stderr, flush=True)\n"
    "time.sleep(3600)\n"
)


def _job(job_id: str) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "RestartPolicy": {"Attempts": 0, "Interval": 60 * SEC, "Delay": SEC // 10, "Mode": "fail"},
                "Tasks": [
                    {
                        "Name": "speaker",
                        "Driver": "raw_exec",
                        "Config": {"command": sys.executable, "args": ["-c", SPEAKER]},
                        "Resources": {"CPU": 100, "MemoryMB": 64},
                        "KillTimeout": SEC,
                    }
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def contract() -> OpenAPIContract:
    return OpenAPIContract(LOGS_CONTRACT)


def _speaking(cluster: RunningCluster) -> str:
    cluster.client.register_job(_job("speaker"))
    alloc = wait_for(lambda: cluster.client.job_allocations("speaker"), what="an allocation")[0]["ID"]
    log = cluster.logs_dir / "speaker.g.speaker.stderr.log"
    wait_for(lambda: log.exists() and "last word" in log.read_text(), what="the task's last word")
    return str(alloc)


def _check_request(contract: OpenAPIContract, resp: requests.Response | httpx.Response) -> dict[str, Any]:
    """The request names the contract's operation and only its parameters, each valid; returns the operation."""
    url = urlsplit(str(resp.request.url))
    template, op = contract.operation(str(resp.request.method), url.path)
    assert (template, op["operationId"]) == ("/client/fs/logs/{allocID}", "GetClientAllocationLogs")
    declared = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    sent = dict(parse_qsl(url.query))
    assert set(sent) <= set(declared), f"undeclared parameters {set(sent) - set(declared)}"
    assert {n for n, p in declared.items() if p.get("required")} <= set(sent)
    for name, value in sent.items():
        contract.validator(declared[name]["schema"]).validate(value)
    return op


def test_the_client_reads_a_tail_through_the_route_as_the_contract_says(
    running_cluster: RunningCluster, contract: OpenAPIContract
) -> None:
    client = running_cluster.client
    alloc = _speaking(running_cluster)
    seen: list[requests.Response] = []
    client.nomad_session.hooks["response"].append(lambda resp, *_a, **_k: seen.append(resp))

    stderr = client.task_logs(alloc, "speaker", "stderr")
    tail = client.task_logs(alloc, "speaker", "stdout", max_bytes=500)

    assert stderr == "café: the last word\n"  # UTF-8, whole: the log is shorter than the tail
    lines = tail.splitlines()
    assert lines[-1] == "line 299 " + "x" * 40 and len(tail.encode()) <= 500
    assert all(line.startswith("line ") and len(line) == 49 for line in lines)  # the cut first line was dropped
    assert len(lines) == 500 // 50
    assert len(seen) == 2
    for resp in seen:
        op = _check_request(contract, resp)
        assert resp.status_code == 200 and str(resp.status_code) in op["responses"]
        assert resp.headers["Content-Type"].split(";")[0] in op["responses"]["200"]["content"]
        assert resp.headers["Content-Type"].startswith("text/plain")  # plain=true
    assert dict(parse_qsl(urlsplit(str(seen[1].request.url)).query)) == {
        "task": "speaker",
        "type": "stdout",
        "origin": "end",
        "offset": "501",
        "plain": "true",
    }


def test_framed_answer_and_offsets(running_cluster: RunningCluster, contract: OpenAPIContract) -> None:
    alloc = _speaking(running_cluster)
    url = f"{running_cluster.cluster.nomad_addr}/v1/client/fs/logs/{alloc}"
    whole = (running_cluster.logs_dir / "speaker.g.speaker.stdout.log").read_bytes()
    http = running_cluster.http

    resp = http.get(url, params={"task": "speaker", "type": "stdout"})  # framed, from the start
    op = _check_request(contract, resp)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/StreamFrame"}
    decoder, text, at, data = json.JSONDecoder(), resp.text, 0, b""
    while at < len(text):
        frame, at = decoder.raw_decode(text, at)
        contract.validate_schema("StreamFrame", frame)
        assert frame["File"] == "alloc/logs/speaker.stdout.0"
        data += base64.b64decode(frame["Data"])
        assert frame["Offset"] == len(data)
    assert data == whole

    def plain(**params: str) -> bytes:
        got = http.get(url, params={"task": "speaker", "type": "stdout", "plain": "true", **params})
        assert got.status_code == 200, got.text
        _check_request(contract, got)
        return got.content

    assert plain(origin="end", offset="100") == whole[-100:]
    assert plain(origin="end", offset=str(10 * len(whole))) == whole  # clamped to the log, as Nomad does
    assert plain(origin="end") == b""
    assert plain(offset="100") == whole[100:]
    assert plain(offset=str(10 * len(whole))) == b""


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"type": "stderr"}, 400, "must provide task name"),
        ({"task": "speaker"}, 400, "must provide log type (stdout/stderr)"),
        ({"task": "speaker", "type": "stdin"}, 400, "must provide log type (stdout/stderr)"),
        ({"task": "speaker", "type": "stderr", "origin": "middle"}, 400, "origin must be start or end"),
        ({"task": "speaker", "type": "stderr", "offset": "ten"}, 400, "error parsing offset"),
        ({"task": "speaker", "type": "stderr", "plain": "yes"}, 400, "failed to parse plain field to boolean"),
        ({"task": "speaker", "type": "stderr", "follow": "true"}, 400, "follow is not supported"),
        ({"task": "listener", "type": "stderr"}, 400, 'unknown task name "listener"'),
    ],
)
def test_bad_parameters_get_nomads_400(
    running_cluster: RunningCluster, contract: OpenAPIContract, params: dict[str, str], status: int, message: str
) -> None:
    alloc = _speaking(running_cluster)
    resp = running_cluster.http.get(f"{running_cluster.cluster.nomad_addr}/v1/client/fs/logs/{alloc}", params=params)
    assert (resp.status_code, resp.headers["content-type"].split(";")[0]) == (status, "text/plain")
    assert message in resp.text
    assert str(status) in contract.operation("GET", f"/v1/client/fs/logs/{alloc}")[1]["responses"]


def test_unknown_allocation_token_and_client_errors(running_cluster: RunningCluster) -> None:
    alloc = _speaking(running_cluster)
    base = f"{running_cluster.cluster.nomad_addr}/v1/client/fs/logs"
    params = {"task": "speaker", "type": "stderr", "plain": "true"}
    assert httpx.get(f"{base}/{alloc}", params=params).status_code == 403
    assert httpx.get(f"{base}/{alloc}", params=params, headers={"X-Nomad-Token": "wrong"}).status_code == 403
    assert running_cluster.http.get(f"{base}/{alloc}", params=params).status_code == 200
    unknown = running_cluster.http.get(f"{base}/0000-not-an-alloc", params=params)
    assert unknown.status_code == 404 and "Unknown allocation" in unknown.text
    client = running_cluster.client
    with pytest.raises(JobNotFound, match="Unknown allocation"):
        client.task_logs("0000-not-an-alloc", "speaker")
    with pytest.raises(JobRejected, match="unknown task name"):
        client.task_logs(alloc, "listener")
    with pytest.raises(ValueError, match="stdout or stderr"):
        client.task_logs(alloc, "speaker", "stdin")
