"""What the supervisor added to the embedded Nomad API, against HashiCorp's OpenAPI description: job versions,
revert, allocation stop (a replacement is placed); and the diagnosis reading log tails through the API (the route's
own contract check is tests/cluster/test_cluster_logs.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests

from fleetmind.supervisor.detect import Detector
from fleetmind.supervisor.diagnose import LOG_BYTES, LOG_LINES, diagnose
from fleetmind.supervisor.rules import RuleContext, decide_by_rules
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


def test_the_diagnosis_reads_the_log_tails_through_the_api(cluster: RunningCluster, tmp_path: Path) -> None:
    """On the embedded backend as on Nomad, the last log lines come from ``GET /v1/client/fs/logs/:alloc_id`` (no
    log folder is handed to the diagnosis), the last 4 KiB of each stream, cut to the last lines."""
    chatter = (
        "import sys\n"
        "for i in range(2000): print(f'progress {i:04d}')\n"
        "sys.stdout.flush()\n"
        "print('bind: Address already in use (port 8080)', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    client = cluster.client
    client.register_job(faults.job("talker", sys.executable, ["-c", chatter], attempts=1))
    found = wait_for(lambda: Detector(client).job_faults("talker"), what="the crash loop detected")
    seen: list[requests.Response] = []
    client.nomad_session.hooks["response"].append(lambda resp, *_a, **_k: seen.append(resp))

    diagnosis = diagnose(client, found[0], state_dir=tmp_path, logs_dir=None)

    data = diagnosis.data
    assert "bind: Address already in use (port 8080)" in data["log_tail"].splitlines()  # the task's own line
    assert "task task exited with code 3" in data["log_tail"].splitlines()[-1]  # the orchestrator's cause line
    assert data["stdout_tail"].splitlines()[-1] == "progress 1999"
    assert len(data["stdout_tail"].splitlines()) == LOG_LINES  # the last lines only, of a 30 KB log
    assert "log_errors" not in data
    reads = [urlsplit(str(r.request.url)) for r in seen if "/client/fs/logs/" in str(r.request.url)]
    assert [dict(parse_qsl(u.query))["type"] for u in reads] == ["stderr", "stdout"]
    assert all(u.path == f"/v1/client/fs/logs/{found[0].alloc}" for u in reads)
    assert all(dict(parse_qsl(u.query))["offset"] == str(LOG_BYTES + 1) for u in reads)
    assert decide_by_rules(diagnosis, RuleContext()) is not None  # the rules read the tail: a taken port
    assert decide_by_rules(diagnosis, RuleContext()).action == "reschedule"  # type: ignore[union-attr]
