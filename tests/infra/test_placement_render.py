"""The roles write what the llama.cpp jobs' constraints read: every Nomad client's ``meta.fleetmind_rpc`` (true on the
hosts the inventory tags for RPC workers: the group ``rpc_workers``, the call-home's ``rpc_worker`` placement, unless
``fleetmind_rpc`` says otherwise), the control node's ``meta.fleetmind_embedder_model`` beside the model llama_jobs
puts there, and a llamacpp-rpc var-file with one worker per tagged host. The rendered job specs are then checked
against the rendered meta of every host with the same constraint rules the embedded orchestrator applies (Nomad's)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from fleetmind.cluster.constraints import NodeFacts, unmet, wants_distinct_hosts
from fleetmind.cluster.jobspec import load_job
from tests.infra.conftest import PLAYBOOKS, REPO, run_playbook

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
HOSTS: dict[str, dict[str, Any]] = {
    "fm-control-1": {},
    "fm-worker-1": {"fleetmind_class": "avx", "fleetmind_workload": "rpc_worker"},  # placed by the call-home
    "fm-worker-2": {"fleetmind_class": "avx2", "fleetmind_workload": "expert"},  # tagged by group, below
    "fm-worker-3": {"fleetmind_class": "avx", "fleetmind_workload": "rpc_worker", "fleetmind_rpc": False},
    "fm-worker-4": {"fleetmind_class": "avx2", "fleetmind_workload": "expert"},
}
TAGGED = {"fm-worker-1", "fm-worker-2"}
MODEL = "/srv/fleetmind/models/all-minilm-l6-v2-q8_0.gguf"


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _meta(folder: Path) -> dict[str, str]:
    """The client meta Nomad would assemble from every file of the folder (it merges them in name order)."""
    meta: dict[str, str] = {}
    for path in sorted(folder.glob("*.hcl")):
        for client in hcl2.loads(path.read_text()).get("client", []):
            for block in client.get("meta", []):
                meta.update({k: _unquote(v) for k, v in block.items() if not k.startswith("__")})
    return meta


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("placement")
    inventory = {
        "all": {
            "children": {
                "control": {"hosts": {"fm-control-1": LOCAL}},
                "worker": {"hosts": {h: {**LOCAL, **v} for h, v in HOSTS.items() if h != "fm-control-1"}},
                "rpc_workers": {"hosts": {"fm-worker-2": {}}},
            }
        }
    }
    (tmp / "hosts.yaml").write_text(yaml.safe_dump(inventory))
    root = tmp / "out"
    (root / "jobs").mkdir(parents=True)  # on a node, the fleetmind_runtime role makes /opt/fleetmind/jobs
    run_playbook(
        PLAYBOOKS / "render_placement.yml",
        tmp / "hosts.yaml",
        extra_vars={
            "render_root": str(root),
            "nomad_manage_service": False,
            "llama_jobs_restart_nomad": False,
            "fleetmind_job_file": str(REPO / "jobs") + "/{{ fleetmind_job_name }}.nomad.hcl",
        },
    ).check()
    return root


def _facts(root: Path, host: str) -> NodeFacts:
    return NodeFacts(host, host, "dc1", "global", meta=_meta(root / host / "nomad.d"))


def _feasible(root: Path, job: dict[str, Any]) -> set[str]:
    """The hosts whose rendered meta meets every node constraint of the job (distinct_hosts counts allocations and
    is checked by the scheduler, not against one node)."""
    node_constraints = [c for c in job["Constraints"] if c["Operand"] != "distinct_hosts"]
    return {h for h in HOSTS if all(unmet(c, _facts(root, h)) is None for c in node_constraints)}


def test_every_client_says_whether_it_is_tagged_for_rpc_workers(rendered: Path) -> None:
    for host in HOSTS:
        assert _meta(rendered / host / "nomad.d")["fleetmind_rpc"] == ("true" if host in TAGGED else "false"), host
    # the call-home's facts stay beside the tag; a host that never called home (the control node) is unclassified,
    # which the jobs' default class pattern (.*) still matches: without a class it could run no model job at all
    assert _meta(rendered / "fm-worker-1" / "nomad.d")["fleetmind_class"] == "avx"
    assert _meta(rendered / "fm-control-1" / "nomad.d")["fleetmind_class"] == "unclassified"


def test_rpc_workers_go_one_to_each_tagged_host(rendered: Path) -> None:
    values = {k: _unquote(v) for k, v in hcl2.loads((rendered / "jobs/llamacpp-rpc.vars.hcl").read_text()).items()}
    assert values["workers"] == len(TAGGED)
    assert "node_classes" not in values  # placed by the tag, not by class
    job = load_job(rendered / "jobs/llamacpp-rpc.nomad.hcl", {k: v for k, v in values.items() if "__" not in k})
    assert wants_distinct_hosts(job["Constraints"])
    assert _feasible(rendered, job) == TAGGED


def test_the_embedder_is_pinned_to_the_node_holding_its_model(rendered: Path) -> None:
    assert (rendered / "fm-control-1/nomad.d/fleetmind-embedder.hcl").stat().st_mode & 0o077 == 0
    values = hcl2.loads((rendered / "jobs/llama-embedder.vars.hcl").read_text())
    assert _unquote(values["model"]) == MODEL
    job = load_job(rendered / "jobs/llama-embedder.nomad.hcl", {"model": MODEL})
    assert _feasible(rendered, job) == {"fm-control-1"}
    assert _meta(rendered / "fm-control-1/nomad.d")["fleetmind_embedder_model"] == MODEL
