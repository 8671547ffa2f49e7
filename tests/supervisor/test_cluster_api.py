"""What the supervisor added to the embedded Nomad API, against HashiCorp's OpenAPI description: job versions,
revert, allocation stop (a replacement is placed)."""

from __future__ import annotations

import sys

from tests.cluster.conftest import OPENAPI, OpenAPIContract, RunningCluster, wait_for
from tests.supervisor import faults


def test_versions_revert_and_alloc_stop_match_nomad(cluster: RunningCluster) -> None:
    contract = OpenAPIContract(OPENAPI)
    base = cluster.cluster.nomad_addr
    client = cluster.client
    client.register_job(faults.job("v", sys.executable, ["-c", faults.SLEEPER]))
    client.register_job(faults.job("v", sys.executable, ["-c", faults.SLEEPER, "x"]))
    response = cluster.http.get(f"{base}/v1/job/v/versions")
    contract.validate_response("GET", "/v1/job/v/versions", 200, response.json(), response.headers)
    assert [v["Version"] for v in response.json()["Versions"]] == [1, 0]
    response = cluster.http.post(
        f"{base}/v1/job/v/revert", json={"JobID": "v", "JobVersion": 0, "EnforcePriorVersion": 1}
    )
    contract.validate_response("POST", "/v1/job/v/revert", 200, response.json(), response.headers)
    assert client.job("v")["Version"] == 2
    assert client.job_versions("v")[0]["TaskGroups"][0]["Tasks"][0]["Config"]["args"] == ["-c", faults.SLEEPER]
    stale = cluster.http.post(f"{base}/v1/job/v/revert", json={"JobID": "v", "JobVersion": 0, "EnforcePriorVersion": 1})
    assert stale.status_code == 400
    alloc = wait_for(
        lambda: [a for a in client.job_allocations("v") if a["ClientStatus"] == "running" and a["JobVersion"] == 2],
        what="version 2 running",
    )[0]
    response = cluster.http.post(f"{base}/v1/allocation/{alloc['ID']}/stop")
    contract.validate_response("POST", f"/v1/allocation/{alloc['ID']}/stop", 200, response.json(), response.headers)
    wait_for(
        lambda: [a for a in client.job_allocations("v") if a["ClientStatus"] == "running" and a["ID"] != alloc["ID"]],
        what="a replacement allocation",
    )
    assert client.allocation(alloc["ID"])["DesiredStatus"] == "stop"
    assert cluster.http.post(f"{base}/v1/allocation/nope/stop").status_code == 404
