"""Every Nomad request ClusterClient makes, against a running EmbeddedCluster, checked against HashiCorp's
spec.

The client's requests session records each exchange; each request body and each successful response body
(and its X-Nomad-Index header) is validated against the operation's schema in nomad-openapi-v1.yaml.
"""

from __future__ import annotations

import json
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import pytest
import requests

from conftest import JOBS_DIR, OpenAPIContract, RunningCluster, server_job, wait_for
from fleetmind.cluster.client import ClusterClient
from fleetmind.cluster.errors import JobNotFound, JobRejected, OrchestratorUnavailable
from fleetmind.cluster.jobspec import load_job


def _record(client: ClusterClient) -> list[requests.Response]:
    seen: list[requests.Response] = []
    client.nomad_session.hooks["response"].append(lambda resp, *_a, **_k: seen.append(resp))
    return seen


def _validate_exchange(contract: OpenAPIContract, resp: requests.Response) -> tuple[str, str]:
    method = str(resp.request.method)
    path = urlsplit(str(resp.request.url)).path
    template, operation = contract.operation(method, path)
    if resp.request.body and "requestBody" in operation:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        body = json.loads(cast(bytes, resp.request.body))
        contract.validator({"$ref": f"urn:nomad-openapi{schema['$ref']}"}).validate(body)
    if resp.ok:
        contract.validate_response(method, path, resp.status_code, resp.json(), resp.headers)
    return method, template


def test_every_client_request_matches_the_openapi(running_cluster: RunningCluster, nomad_openapi: Any) -> None:
    client = running_cluster.client
    seen = _record(client)

    register = client.register_job(server_job("contract", tags=["contract"]))
    assert register["EvalID"]
    assert [j["ID"] for j in client.jobs()] == ["contract"]
    assert client.job("contract")["ID"] == "contract"
    alloc_id = wait_for(lambda: client.job_allocations("contract"), what="allocation")[0]["ID"]
    wait_for(lambda: client.allocation(alloc_id)["ClientStatus"] == "running", what="running allocation")
    client.stop_job("contract")
    wait_for(lambda: client.job_allocations("contract")[0]["ClientStatus"] == "complete", what="stopped alloc")
    assert client.job("contract")["Status"] == "dead"
    client.stop_job("contract", purge=True)
    with pytest.raises(JobNotFound):
        client.job("contract")
    with pytest.raises(JobRejected, match="driver 'docker'"):
        bad = server_job("bad")
        bad["TaskGroups"][0]["Tasks"][0]["Driver"] = "docker"
        client.register_job(bad)

    covered = {_validate_exchange(nomad_openapi, resp) for resp in seen}
    assert covered >= {
        ("POST", "/jobs"),
        ("GET", "/jobs"),
        ("GET", "/job/{jobName}"),
        ("GET", "/job/{jobName}/allocations"),
        ("GET", "/allocation/{allocID}"),
        ("DELETE", "/job/{jobName}"),
    }


def test_the_stack_jobs_are_accepted_as_submitted(running_cluster: RunningCluster, nomad_openapi: Any) -> None:
    """The real job files go through register and come back from GET /v1/job as valid Jobs."""
    client = running_cluster.client
    seen = _record(client)
    variables = {"python": "/nonexistent/python", "host": "127.0.0.1", "port": 1}
    for name in ("pipecatapp", "moe_gateway"):
        client.register_job(load_job(JOBS_DIR / f"{name}.nomad.hcl", variables))
        assert client.job(name)["TaskGroups"][0]["Tasks"][0]["Config"]["command"] == "/nonexistent/python"
        client.stop_job(name, purge=True)
    for resp in seen:
        _validate_exchange(nomad_openapi, resp)


@pytest.mark.parametrize(
    "path", ["/v1/allocations", "/v1/status/leader", "/v1/status/peers", "/v1/regions", "/v1/nodes"]
)
def test_other_routes_match_the_openapi(running_cluster: RunningCluster, nomad_openapi: Any, path: str) -> None:
    client = running_cluster.client
    client.register_job(server_job("other"))
    wait_for(lambda: client.job_allocations("other"), what="allocation")
    resp = httpx.get(running_cluster.cluster.nomad_addr + path, headers=running_cluster.nomad_headers)
    assert resp.status_code == 200
    nomad_openapi.validate_response("GET", path, 200, resp.json(), resp.headers)
    assert resp.json()


def test_blocking_query_returns_after_a_change(running_cluster: RunningCluster) -> None:
    base = running_cluster.cluster.nomad_addr
    index = int(httpx.get(f"{base}/v1/jobs", headers=running_cluster.nomad_headers).headers["X-Nomad-Index"])
    with httpx.Client(timeout=60, headers=running_cluster.nomad_headers) as http:
        running_cluster.loop.call_soon_threadsafe(
            lambda: running_cluster.cluster.orchestrator.register(server_job("late"))
        )
        resp = http.get(f"{base}/v1/jobs", params={"index": index, "wait": "30s"})
    assert int(resp.headers["X-Nomad-Index"]) > index
    assert [j["ID"] for j in resp.json()] == ["late"]


def test_unreachable_orchestrator_is_a_clear_error() -> None:
    with ClusterClient(nomad_addr="http://127.0.0.1:9", consul_addr="127.0.0.1:9") as client:
        with pytest.raises(OrchestratorUnavailable, match=r"127\.0\.0\.1:9"):
            client.jobs()
