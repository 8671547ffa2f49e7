"""Placement by node class: ``constraint`` blocks in job files become Nomad's ``Constraints`` JSON, and the embedded
orchestrator places a group only where they hold and while its node is eligible; drain and eligibility go through
the same client calls as on Nomad, and every exchange is checked against HashiCorp's OpenAPI description."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import requests

from conftest import JOBS_DIR, OpenAPIContract, RunningCluster, server_job, wait_for
from fleetmind.cluster.constraints import NodeFacts, holds, unmet
from fleetmind.cluster.embedded.node import machine_meta_and_attributes
from fleetmind.cluster.errors import JobRejected, JobSpecError
from fleetmind.cluster.jobspec import load_job
from fleetmind.llm.node_class import CLASSES

CLASS = "${meta.fleetmind_class}"
JOB = """
variable "node_classes" {
  type        = string
  default     = "^(avx512|avx2)$"
  description = "Classes allowed."
}
job "placed" {
  constraint {
    attribute = "${meta.fleetmind_class}"
    operator  = "regexp"
    value     = var.node_classes
  }
  group "g" {
    constraint {
      attribute = "${attr.cpu.arch}"
      value     = "amd64"
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
      constraint {
        attribute = "${meta.fleetmind_workload}"
        operator  = "set_contains_any"
        value     = "expert,rpc_worker"
      }
    }
  }
}
"""


def test_constraint_blocks_become_nomads_json(tmp_path: Path, nomad_openapi: OpenAPIContract) -> None:
    path = tmp_path / "placed.nomad.hcl"
    path.write_text(JOB)
    job = load_job(path, {"node_classes": "^avx512$"})
    nomad_openapi.validate_schema("Job", job)
    assert job["Constraints"] == [{"LTarget": CLASS, "RTarget": "^avx512$", "Operand": "regexp"}]
    group = job["TaskGroups"][0]
    assert group["Constraints"] == [{"LTarget": "${attr.cpu.arch}", "RTarget": "amd64", "Operand": "="}]
    assert group["Tasks"][0]["Constraints"] == [
        {"LTarget": "${meta.fleetmind_workload}", "RTarget": "expert,rpc_worker", "Operand": "set_contains_any"}
    ]
    for constraint in [*job["Constraints"], *group["Constraints"], *group["Tasks"][0]["Constraints"]]:
        nomad_openapi.validate_schema("Constraint", constraint)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ('operator = "like"\n value = "x"', r"constraint.operator: unknown operator \'like\'"),
        ('operator = "regexp"\n value = "("', r"constraint.value: .*not a valid regular expression"),
        ('operator = "="', r"constraint.value: is required"),
        ('attribute = "${meta.x}"\n value = "a"\n weight = 5', r"constraint.weight: unknown or unsupported field"),
    ],
)
def test_bad_constraints_name_the_file_line_and_field(tmp_path: Path, block: str, expected: str) -> None:
    attribute = "" if "attribute" in block else 'attribute = "${meta.fleetmind_class}"\n'
    path = tmp_path / "bad.nomad.hcl"
    path.write_text(JOB.replace('    operator  = "regexp"\n    value     = var.node_classes', attribute + block, 1))
    with pytest.raises(JobSpecError, match=rf"bad\.nomad\.hcl:\d+: job \"placed\" > {expected}"):
        load_job(path)


def test_stack_job_files_place_by_node_class(nomad_openapi: OpenAPIContract) -> None:
    """The model jobs carry a regexp constraint on the class that, by default, allows every class."""
    for name, required in (("llama-expert", {"model": "/m.gguf"}), ("llama-embedder", {"model": "/e.gguf"})):
        job = load_job(JOBS_DIR / f"{name}.nomad.hcl", required)
        # the class constraint comes first (the embedder is also pinned to its model: test_cluster_tagged_placement)
        constraint = job["Constraints"][0]
        assert constraint["LTarget"] == CLASS and constraint["Operand"] == "regexp"
        facts = [NodeFacts("id", "n", "dc1", "global", meta={"fleetmind_class": c}) for c in CLASSES]
        assert all(unmet(constraint, f) is None for f in facts), constraint
        narrowed = load_job(JOBS_DIR / f"{name}.nomad.hcl", {**required, "node_classes": "^(avx512|avx2)$"})
        passed = [f.meta["fleetmind_class"] for f in facts if unmet(narrowed["Constraints"][0], f) is None]  # type: ignore[index]
        assert passed == ["avx512", "avx2"]
        nomad_openapi.validate_schema("Job", narrowed)


@pytest.mark.parametrize(
    ("operand", "left", "right", "expected"),
    [
        ("=", "avx2", "avx2", True),
        ("=", None, "avx2", False),
        ("!=", "avx2", "avx512", True),
        ("!=", None, "avx512", True),
        ("regexp", "avx512", "^avx(2|512)$", True),
        ("regexp", "sse42", "^avx", False),
        ("set_contains_any", "expert,embedder", "rpc_worker, embedder", True),
        ("set_contains_any", "none", "expert,embedder", False),
        ("set_contains", "a,b,c", "a,c", True),
        ("set_contains", "a,b", "a,c", False),
        ("is_set", "x", "", True),
        ("is_not_set", None, "", True),
        (">=", "16", "8", True),  # numbers compare as numbers, not as text
        ("<", "b", "a", False),
    ],
)
def test_operators_follow_nomads_feasibility_rules(operand: str, left: str | None, right: str, expected: bool) -> None:
    assert holds(operand, left, right) is expected


def test_the_embedded_node_carries_this_machines_class() -> None:
    meta, attributes = machine_meta_and_attributes()
    assert meta["fleetmind_class"] in CLASSES
    assert meta["fleetmind_workload"] in ("expert", "rpc_worker", "embedder", "none")
    assert int(attributes["cpu.numcores"]) >= 1 and int(attributes["memory.totalbytes"]) > 0


@pytest.fixture
def avx2_cluster(tmp_path: Path) -> Iterator[RunningCluster]:
    """An embedded cluster whose node reports the avx2 class, whatever this machine is."""
    cluster = RunningCluster(tmp_path / "logs", node_meta={"fleetmind_class": "avx2", "fleetmind_workload": "expert"})
    try:
        yield cluster
    finally:
        cluster.close()


def _with_constraint(job_id: str, operand: str, value: str) -> dict[str, Any]:
    job = server_job(job_id)
    job["TaskGroups"][0]["Constraints"] = [{"LTarget": CLASS, "RTarget": value, "Operand": operand}]
    return job


def _record(cluster: RunningCluster) -> list[requests.Response]:
    seen: list[requests.Response] = []
    cluster.client.nomad_session.hooks["response"].append(lambda resp, *_a, **_k: seen.append(resp))
    return seen


def _check_exchanges(contract: OpenAPIContract, seen: list[requests.Response]) -> set[tuple[str, str]]:
    """Validate each request body and successful response against the operation in the contract."""
    covered = set()
    for resp in seen:
        method, path = str(resp.request.method), urlsplit(str(resp.request.url)).path
        template, operation = contract.operation(method, path)
        if resp.request.body and "requestBody" in operation:
            body = json.loads(cast(bytes, resp.request.body))
            if template.endswith("/drain") and body.get("DrainSpec") is None:
                # cancelling a drain: python-nomad sends DrainSpec null, which Nomad's Go API takes (a pointer)
                # though the description marks the field non-nullable
                body.pop("DrainSpec")
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            contract.validator({"$ref": f"urn:nomad-openapi{ref}"}).validate(body)
        if resp.ok:
            contract.validate_response(method, path, resp.status_code, resp.json(), resp.headers)
        covered.add((method, template))
    return covered


def test_a_job_whose_constraint_fails_is_not_placed_and_says_why(
    avx2_cluster: RunningCluster, nomad_openapi: OpenAPIContract
) -> None:
    client = avx2_cluster.client
    seen = _record(avx2_cluster)
    eval_id = client.register_job(_with_constraint("big", "regexp", "^avx512$"))["EvalID"]
    evaluation = wait_for(lambda: (e := client.evaluation(eval_id))["Status"] == "complete" and e, what="eval")
    assert "constraint not met: ${meta.fleetmind_class} regexp ^avx512$" in evaluation["StatusDescription"]
    assert "'avx2'" in evaluation["StatusDescription"]
    failed = evaluation["FailedTGAllocs"]["web"]
    assert failed["ConstraintFiltered"] == {"${meta.fleetmind_class} regexp ^avx512$": 1}
    assert failed["NodesEvaluated"] == 1 and failed["NodesFiltered"] == 1
    assert evaluation["QueuedAllocations"] == {"web": 1}
    assert client.job_allocations("big") == []
    job = client.job("big")
    assert job["Status"] == "pending" and "constraint not met" in job["StatusDescription"]
    assert client.job_evaluations("big")[0]["ID"] == eval_id
    assert next(j for j in client.jobs() if j["ID"] == "big")["JobSummary"]["Summary"]["web"]["Queued"] == 1

    client.register_job(_with_constraint("fits", "set_contains_any", "avx512,avx2"))
    alloc = avx2_cluster.alloc("fits")
    wait_for(lambda: client.allocation(alloc["ID"])["ClientStatus"] == "running", what="the fitting job running")
    covered = _check_exchanges(nomad_openapi, seen)
    assert {("GET", "/evaluation/{evalID}"), ("GET", "/job/{jobName}/evaluations")} <= covered


def test_unsupported_operators_are_refused_at_registration(avx2_cluster: RunningCluster) -> None:
    with pytest.raises(JobRejected, match="operator 'distinct_property' is not supported by the embedded"):
        avx2_cluster.client.register_job(_with_constraint("spread", "distinct_property", "${meta.rack}"))
    with pytest.raises(JobRejected, match="not a valid regular expression"):
        avx2_cluster.client.register_job(_with_constraint("bad", "regexp", "(avx"))


def test_node_class_reaches_the_service_meta(avx2_cluster: RunningCluster) -> None:
    job = server_job("classy")
    job["TaskGroups"][0]["Services"][0]["Meta"] = {"node_class": CLASS}
    avx2_cluster.client.register_job(job)
    (instance,) = wait_for(lambda: avx2_cluster.client.healthy_services("classy"), what="a healthy service")
    assert instance.meta["node_class"] == "avx2"


def test_drain_stops_placing_and_undrain_places_again(
    avx2_cluster: RunningCluster, nomad_openapi: OpenAPIContract
) -> None:
    """The power agent's drain (ClusterClient.drain_node) on the embedded node: no new placements, running work
    left alone (this node is the control node), and placement resumes when it is made eligible again."""
    client = avx2_cluster.client
    seen = _record(avx2_cluster)
    client.register_job(server_job("before"))
    before = avx2_cluster.alloc("before")
    (node,) = client.nodes()
    assert node["SchedulingEligibility"] == "eligible" and client.node(node["ID"])["Meta"]["fleetmind_class"] == "avx2"

    client.drain_node(node["ID"], deadline_s=60)
    (drained,) = client.nodes()
    assert drained["SchedulingEligibility"] == "ineligible" and drained["LastDrain"]["Status"] == "complete"
    eval_id = client.register_job(server_job("after"))["EvalID"]
    evaluation = wait_for(lambda: (e := client.evaluation(eval_id))["Status"] == "complete" and e, what="eval")
    assert "ineligible for scheduling" in evaluation["StatusDescription"]
    assert client.job_allocations("after") == []
    assert client.allocation(before["ID"])["DesiredStatus"] == "run"
    assert [a["JobID"] for a in client.node_allocations(node["ID"])] == ["before"]

    answer = client.undrain_node(node["ID"])
    assert answer["EvalIDs"], answer
    avx2_cluster.alloc("after")
    assert client.nodes()[0]["SchedulingEligibility"] == "eligible"

    client.set_node_eligibility(node["ID"], eligible=False)
    client.register_job(server_job("later"))
    wait_for(lambda: "ineligible" in client.job("later")["StatusDescription"], what="the refusal")
    client.set_node_eligibility(node["ID"], eligible=True)
    avx2_cluster.alloc("later")
    covered = _check_exchanges(nomad_openapi, seen)
    assert {
        ("POST", "/node/{nodeId}/drain"),
        ("POST", "/node/{nodeId}/eligibility"),
        ("GET", "/node/{nodeId}"),
        ("GET", "/node/{nodeId}/allocations"),
        ("GET", "/nodes"),
    } <= covered
