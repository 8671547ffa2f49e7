"""RPC workers go where they are tagged, one per node, and the embedder goes where its model is: the job files'
constraints, and the embedded orchestrator placing or refusing them as Nomad's scheduler would (``distinct_hosts``
counted over what already runs on the node, job- or group-wide; refused on a task), with every exchange checked
against HashiCorp's OpenAPI description. On one node, ``distinct_hosts`` means one worker: ``fleetmind status``
says so."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cluster_placement import _check_exchanges, _record
from typer.testing import CliRunner

from conftest import JOBS_DIR, OpenAPIContract, RunningCluster, server_job, wait_for
from fleetmind.cli import app
from fleetmind.cluster.constraints import NodeFacts, unmet, wants_distinct_hosts
from fleetmind.cluster.errors import JobRejected
from fleetmind.cluster.jobspec import load_job

RPC_VARS = {"rpc_server": "/bin/ggml-rpc-server", "python": "/venv/python", "workers": 3}
TAG = {"LTarget": "${meta.fleetmind_rpc}", "RTarget": "true", "Operand": "="}
MODEL = "/srv/fleetmind/models/all-minilm-l6-v2-q8_0.gguf"


def _facts(**meta: str) -> NodeFacts:
    return NodeFacts("id", "n", "dc1", "global", meta={"fleetmind_class": "avx2", **meta})


def test_rpc_workers_are_placed_by_their_tag_one_per_node(nomad_openapi: OpenAPIContract) -> None:
    job = load_job(JOBS_DIR / "llamacpp-rpc.nomad.hcl", RPC_VARS)
    nomad_openapi.validate_schema("Job", job)
    assert TAG in job["Constraints"]
    assert {"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"} in job["Constraints"]
    assert wants_distinct_hosts(job["Constraints"])
    tag = next(c for c in job["Constraints"] if c == TAG)
    assert unmet(tag, _facts(fleetmind_rpc="true")) is None
    assert "is missing" in str(unmet(tag, _facts()))  # an untagged node (no meta) takes no worker
    assert unmet(tag, _facts(fleetmind_rpc="false")) is not None
    # several workers on one machine (loopback tests and benches) turn it off, as Nomad reads value = "false"
    loopback = load_job(JOBS_DIR / "llamacpp-rpc.nomad.hcl", {**RPC_VARS, "distinct_hosts": False})
    assert not wants_distinct_hosts(loopback["Constraints"])


@pytest.mark.parametrize(
    ("value", "expected"), [("", True), ("true", True), ("1", True), ("false", False), ("0", False), ("x", True)]
)
def test_distinct_hosts_value_is_read_as_nomad_reads_it(value: str, expected: bool) -> None:
    assert wants_distinct_hosts([{"LTarget": "", "RTarget": value, "Operand": "distinct_hosts"}]) is expected


def test_the_embedder_is_pinned_to_the_node_holding_its_model(nomad_openapi: OpenAPIContract) -> None:
    job = load_job(JOBS_DIR / "llama-embedder.nomad.hcl", {"model": MODEL})
    nomad_openapi.validate_schema("Job", job)
    pin = {"LTarget": "${meta.fleetmind_embedder_model}", "RTarget": MODEL, "Operand": "="}
    assert pin in job["Constraints"]
    assert unmet(pin, _facts(fleetmind_embedder_model=MODEL)) is None
    assert unmet(pin, _facts()) is not None  # a node the model was never put on
    assert unmet(pin, _facts(fleetmind_embedder_model="/elsewhere/all-minilm-l6-v2-q8_0.gguf")) is not None


@pytest.fixture
def one_node(tmp_path: Path) -> Iterator[RunningCluster]:
    cluster = RunningCluster(tmp_path / "logs", node_meta={"fleetmind_embedder_model": MODEL})
    try:
        yield cluster
    finally:
        cluster.close()


def _spread(job_id: str, *, count: int, where: str, value: str = "true") -> dict[str, Any]:
    job = server_job(job_id)
    job["TaskGroups"][0]["Count"] = count
    distinct = [{"LTarget": "", "RTarget": value, "Operand": "distinct_hosts"}]
    if where == "job":
        job["Constraints"] = distinct
    else:
        job["TaskGroups"][0]["Constraints"] = distinct
    return job


def _complete(cluster: RunningCluster, eval_id: str) -> dict[str, Any]:
    client = cluster.client
    return wait_for(lambda: (e := client.evaluation(eval_id))["Status"] == "complete" and e, what="the evaluation")


def test_distinct_hosts_on_one_node_places_one_and_queues_the_rest(
    one_node: RunningCluster, nomad_openapi: OpenAPIContract
) -> None:
    client = one_node.client
    seen = _record(one_node)
    evaluation = _complete(one_node, client.register_job(_spread("spread", count=3, where="group"))["EvalID"])
    failed = evaluation["FailedTGAllocs"]["web"]
    assert failed["ConstraintFiltered"] == {"distinct_hosts": 1}  # Nomad's metric key for this filter
    assert failed["NodesEvaluated"] == 1 and failed["NodesFiltered"] == 1 and failed["CoalescedFailures"] == 1
    assert evaluation["QueuedAllocations"] == {"web": 2}
    assert "1 of 3 run and 2 wait until another node joins" in evaluation["StatusDescription"]
    (alloc,) = client.job_allocations("spread")
    wait_for(lambda: client.allocation(alloc["ID"])["ClientStatus"] == "running", what="the one allocation running")
    summary = next(j for j in client.jobs() if j["ID"] == "spread")["JobSummary"]["Summary"]["web"]
    assert summary["Queued"] == 2 and summary["Running"] == 1
    assert "distinct_hosts" in client.job("spread")["StatusDescription"]

    # a new evaluation (here: the allocation stopped) still places only one
    client.stop_allocation(alloc["ID"])
    wait_for(lambda: len(client.job_allocations("spread")) == 2, what="the replacement")
    live = [a for a in client.job_allocations("spread") if a["DesiredStatus"] == "run"]
    assert len(live) == 1

    # value "false" turns it off: all three run on the one node
    client.register_job(_spread("packed", count=3, where="group", value="false"))
    wait_for(lambda: len(client.job_allocations("packed")) == 3, what="three allocations")
    assert client.job("packed")["StatusDescription"] == ""
    covered = _check_exchanges(nomad_openapi, seen)
    assert ("GET", "/evaluation/{evalID}") in covered and ("GET", "/jobs") in covered


def test_job_level_distinct_hosts_counts_every_group(one_node: RunningCluster) -> None:
    client = one_node.client
    job = _spread("two-groups", count=1, where="job")
    second = {**job["TaskGroups"][0], "Name": "other"}
    job["TaskGroups"].append(second)
    evaluation = _complete(one_node, client.register_job(job)["EvalID"])
    assert evaluation["QueuedAllocations"] == {"web": 0, "other": 1}
    assert evaluation["FailedTGAllocs"]["other"]["ConstraintFiltered"] == {"distinct_hosts": 1}
    assert "the job runs one allocation per node" in evaluation["StatusDescription"]
    assert [a["TaskGroup"] for a in client.job_allocations("two-groups")] == ["web"]


def test_distinct_hosts_on_a_task_is_refused(one_node: RunningCluster) -> None:
    job = server_job("on-task")
    job["TaskGroups"][0]["Tasks"][0]["Constraints"] = [{"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}]
    with pytest.raises(JobRejected, match="'distinct_hosts' is not allowed at task level"):
        one_node.client.register_job(job)


def test_the_rpc_job_on_one_node_runs_one_worker_and_status_says_why(one_node: RunningCluster) -> None:
    """The real job file: the embedded node is tagged, so one worker (a real ggml-rpc-server and its sidecar) runs
    and the second waits; `fleetmind status` prints why instead of showing one worker silently."""
    from fleetmind.llm import binaries

    client = one_node.client
    job = load_job(
        JOBS_DIR / "llamacpp-rpc.nomad.hcl",
        {"rpc_server": str(binaries.rpc_server()), "python": sys.executable, "host": "127.0.0.1", "threads": 1},
    )
    evaluation = _complete(one_node, client.register_job(job)["EvalID"])
    assert evaluation["QueuedAllocations"] == {"worker": 1}
    wait_for(lambda: len(client.healthy_services("llamacpp-rpc", tag="rpc")) == 1, timeout=60, what="one worker")
    env = {
        "NOMAD_ADDR": one_node.cluster.nomad_addr,
        "CONSUL_HTTP_ADDR": one_node.cluster.consul_addr,
        "NOMAD_TOKEN": one_node.cluster.token,
        "CONSUL_HTTP_TOKEN": one_node.cluster.token,
    }
    out = CliRunner().invoke(app, ["status"], env=env)
    assert out.exit_code == 0, out.output
    assert "llamacpp-rpc: 1 allocation(s) of group worker not placed" in out.output
    assert "one allocation per node and this cluster has one node" in out.output


def test_an_untagged_node_takes_no_worker_and_a_node_without_the_model_no_embedder(tmp_path: Path) -> None:
    cluster = RunningCluster(tmp_path / "logs", node_meta={"fleetmind_rpc": "false"})
    try:
        client = cluster.client
        rpc = load_job(JOBS_DIR / "llamacpp-rpc.nomad.hcl", {**RPC_VARS, "workers": 1})
        evaluation = _complete(cluster, client.register_job(rpc)["EvalID"])
        assert "constraint not met: ${meta.fleetmind_rpc} = true" in evaluation["StatusDescription"]
        embedder = load_job(JOBS_DIR / "llama-embedder.nomad.hcl", {"model": MODEL, "llama_server": "/bin/true"})
        evaluation = _complete(cluster, client.register_job(embedder)["EvalID"])
        assert f"constraint not met: ${{meta.fleetmind_embedder_model}} = {MODEL}" in evaluation["StatusDescription"]
        assert "is missing" in evaluation["StatusDescription"]
        assert client.job_allocations("llamacpp-rpc") == [] and client.job_allocations("llama-embedder") == []
    finally:
        cluster.close()


def test_the_embedder_is_placed_on_the_node_whose_meta_names_its_model(one_node: RunningCluster) -> None:
    client = one_node.client
    embedder = load_job(JOBS_DIR / "llama-embedder.nomad.hcl", {"model": MODEL, "llama_server": "/bin/true"})
    evaluation = _complete(one_node, client.register_job(embedder)["EvalID"])
    assert "FailedTGAllocs" not in evaluation
    assert len(client.job_allocations("llama-embedder")) == 1
