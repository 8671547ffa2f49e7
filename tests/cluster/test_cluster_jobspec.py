"""The job files in jobs/ and the loader: Nomad API JSON matching HashiCorp's Job schema, clear errors."""

from __future__ import annotations

from pathlib import Path

import hcl2
import pytest

from conftest import JOBS_DIR, OpenAPIContract
from fleetmind.cluster.errors import ClusterError, JobSpecError
from fleetmind.cluster.jobspec import load_job

# What each job needs (required variables) to load; the rest have defaults.
REQUIRED = {
    "llama-expert.nomad.hcl": {"model": "/srv/models/tiny.gguf"},
    "llama-embedder.nomad.hcl": {"model": "/srv/models/all-minilm-l6-v2-q8_0.gguf"},
}
JOB_FILES = sorted(p.name for p in JOBS_DIR.glob("*.nomad.hcl"))


def test_the_three_stack_jobs_exist() -> None:
    assert {"llama-expert.nomad.hcl", "pipecatapp.nomad.hcl", "moe_gateway.nomad.hcl"} <= set(JOB_FILES)


@pytest.mark.parametrize("name", JOB_FILES)
def test_job_file_loads_and_matches_the_openapi_job_schema(name: str, nomad_openapi: OpenAPIContract) -> None:
    job = load_job(JOBS_DIR / name, REQUIRED.get(name))
    nomad_openapi.validate_schema("Job", job)
    nomad_openapi.validate_schema("JobRegisterRequest", {"Job": job})
    assert job["ID"] == name.removesuffix(".nomad.hcl")


@pytest.mark.parametrize("name", JOB_FILES)
def test_job_file_follows_the_house_style(name: str) -> None:
    """Typed, described variables; explicit restart/reschedule; a checked service with check_restart."""
    raw = hcl2.loads((JOBS_DIR / name).read_text())
    for block in raw.get("variable", []):
        ((label, body),) = block.items()
        assert "type" in body and body.get("description"), f"variable {label} needs a type and a description"
    text = (JOBS_DIR / name).read_text()
    for needle in ("restart {", "reschedule {", "service {", "check {", "check_restart {", "resources {"):
        assert needle in text, f"{name} has no {needle.rstrip(' {')} block"
    job = load_job(JOBS_DIR / name, REQUIRED.get(name))
    for group in job["TaskGroups"]:
        assert group["Services"] and all(s["Checks"] for s in group["Services"])
        assert all(c["CheckRestart"]["Limit"] > 0 for s in group["Services"] for c in s["Checks"])
        assert all(t["Driver"] == "raw_exec" for t in group["Tasks"])


def test_llama_expert_contract() -> None:
    job = load_job(
        JOBS_DIR / "llama-expert.nomad.hcl",
        {
            "llama_server": "/bin/llama-server",
            "model": "/m/SmolLM2.gguf",
            "expert_name": "code",
            "port": 9123,
            "threads": 3,
            "ctx_size": 4096,
            "host": "127.0.0.1",
            "service_secret": "s3cret",
            "service_proof": "abc123",
        },
    )
    assert job["ID"] == "llama-expert"
    group = job["TaskGroups"][0]
    assert group["Networks"][0]["ReservedPorts"] == [{"Label": "http", "Value": 9123}]
    service = group["Services"][0]
    assert service["Name"] == "expert-code"
    assert service["Tags"] == ["expert", "expert:code"]
    assert service["Meta"] == {
        "expert": "code",
        "model": "SmolLM2.gguf",
        "system_prompt": "You are a helpful assistant.",
        "generation": "{}",  # the expert's generation defaults (JSON); none given: llama-server's own
        "fleetmind_proof": "abc123",
        "node_class": "${meta.fleetmind_class}",  # filled in by the scheduler from the node's meta
    }
    assert service["PortLabel"] == "http"
    check = service["Checks"][0]
    assert (check["Type"], check["Path"]) == ("http", "/health")
    task = group["Tasks"][0]
    assert task["Config"]["command"] == "/bin/llama-server"
    assert task["Config"]["args"] == [
        "-m",
        "/m/SmolLM2.gguf",
        "--host",
        "127.0.0.1",
        "--port",
        "${NOMAD_PORT_http}",
        "-c",
        "4096",
        "-t",
        "3",
        "--cache-reuse",
        "16",
        "--no-webui",
        "--cors-origins",
        "https://no-cors.invalid",
        "--no-cors-credentials",
    ]
    # the API key travels in the environment, not on the command line where `ps` shows it
    assert task["Env"]["LLAMA_API_KEY"] == "s3cret"


def test_llama_embedder_contract() -> None:
    """The embedding server as EmbeddingServer (the agent's fallback, the tests') starts it: the same flags and the
    same short OpenMP spin, which keeps the embedder's threads off the cores the expert needs next."""
    from fleetmind.llm.embeddings import SPIN_ENV

    job = load_job(JOBS_DIR / "llama-embedder.nomad.hcl", {**REQUIRED["llama-embedder.nomad.hcl"], "threads": 2})
    task = job["TaskGroups"][0]["Tasks"][0]
    args = " ".join(task["Config"]["args"])
    assert "--embedding --pooling mean" in args and "-c 512 -b 512 -ub 512 -t 2" in args, args
    assert {name: task["Env"].get(name) for name in SPIN_ENV} == SPIN_ENV


@pytest.mark.parametrize(
    ("name", "module", "service", "tags", "port"),
    [
        ("pipecatapp.nomad.hcl", "fleetmind.apps.agent_process", "pipecatapp", ["agent", "mission-control"], 8000),
        ("moe_gateway.nomad.hcl", "fleetmind.gateway", "moe-gateway", ["gateway"], 8080),
    ],
)
def test_python_service_contracts(name: str, module: str, service: str, tags: list[str], port: int) -> None:
    default = load_job(JOBS_DIR / name)
    assert default["TaskGroups"][0]["Networks"][0]["ReservedPorts"][0]["Value"] == port
    job = load_job(
        JOBS_DIR / name,
        {
            "python": "/venv/bin/python",
            "host": "127.0.0.1",
            "port": 9001,
            "state_dir": "/st",
            "consul_addr": "127.0.0.1:18500",
            "nomad_addr": "http://127.0.0.1:14646",
            "nomad_token": "n-token",
            "consul_token": "c-token",
            "service_secret": "s3cret",
        },
    )
    group = job["TaskGroups"][0]
    task = group["Tasks"][0]
    assert task["Config"] == {
        "command": "/venv/bin/python",
        "args": ["-m", module, "--host", "127.0.0.1", "--port", "${NOMAD_PORT_http}"],
    }
    env = dict(task["Env"])
    # only the agent has an embedding server to find; empty (the default) means none
    assert env.pop("FLEETMIND_AGENT_EMBEDDINGS_URL", "") == ""
    # and only the agent takes key hashes from its job (the Ansible role's); empty (the default): keys.json only
    assert env.pop("PIECAT_API_KEYS", "") == ""
    assert env == {
        "FLEETMIND_STATE_DIR": "/st",
        "CONSUL_HTTP_ADDR": "127.0.0.1:18500",
        "NOMAD_ADDR": "http://127.0.0.1:14646",
        "NOMAD_TOKEN": "n-token",
        "CONSUL_HTTP_TOKEN": "c-token",
        "HF_HUB_OFFLINE": "1",
        "FLEETMIND_SERVICE_SECRET": "s3cret",
    }
    assert group["Services"][0]["Name"] == service
    assert group["Services"][0]["Tags"] == tags
    assert group["Services"][0]["Checks"][0]["Path"] == "/health"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.nomad.hcl"
    path.write_text(text)
    return path


MINIMAL = """
variable "port" {
  type        = number
  default     = 8000
  description = "p"
}
variable "name" {
  type        = string
  description = "n"
}
job "demo" {
  group "g" {
    network {
      port "http" { static = var.port }
    }
    restart {
      attempts = 2
      interval = "1m30s"
      delay    = "250ms"
      mode     = "delay"
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/echo"
        args    = ["${var.name}-${NOMAD_PORT_http}", "$${LITERAL}", "${NOMAD_TASK_DIR}/x", upper(var.name)]
      }
      env {
        PORT = var.port
        ADDR = "${NOMAD_ADDR_http}"
      }
    }
  }
}
"""


def test_variables_durations_and_runtime_interpolation(tmp_path: Path) -> None:
    job = load_job(_write(tmp_path, MINIMAL), {"name": "x", "port": "9000"})
    group = job["TaskGroups"][0]
    assert group["Networks"][0]["ReservedPorts"] == [{"Label": "http", "Value": 9000}]
    assert group["RestartPolicy"] == {
        "Attempts": 2,
        "Interval": 90 * 10**9,
        "Delay": 250 * 10**6,
        "Mode": "delay",
    }
    task = group["Tasks"][0]
    assert task["Config"]["args"] == ["x-${NOMAD_PORT_http}", "${LITERAL}", "${NOMAD_TASK_DIR}/x", "X"]
    assert task["Env"] == {"PORT": "9000", "ADDR": "${NOMAD_ADDR_http}"}
    assert task["KillTimeout"] == 5 * 10**9  # Nomad's default
    assert job["Type"] == "service" and group["Count"] == 1


@pytest.mark.parametrize(
    ("variables", "text", "expected"),
    [
        ({"name": "x", "nope": 1}, MINIMAL, "undeclared variable(s) nope"),
        ({}, MINIMAL, "variable 'name' is required"),
        ({"name": "x", "port": "eighty"}, MINIMAL, "variable 'port' (number)"),
        ({"name": "x"}, MINIMAL.replace('"1m30s"', '"ninety"'), 'job "demo" > group "g" > restart.interval'),
        ({"name": "x"}, MINIMAL.replace('mode     = "delay"', 'mode = "sometimes"'), "restart.mode"),
        ({"name": "x"}, MINIMAL.replace("driver = ", "drivr = "), "drivr: unknown or unsupported field"),
        ({"name": "x"}, MINIMAL.replace("var.port }", "var.prt }"), "undeclared variable 'prt'"),
        ({"name": "x"}, MINIMAL.replace('job "demo" {', 'job "demo" {\n  = broken'), "HCL syntax error"),
    ],
)
def test_errors_name_the_file_and_field(tmp_path: Path, variables: dict[str, object], text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(JobSpecError) as info:
        load_job(path, variables)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    assert isinstance(info.value, ClusterError) and isinstance(info.value, ValueError)


def test_errors_carry_the_line(tmp_path: Path) -> None:
    text = MINIMAL.replace('"1m30s"', '"ninety"')
    path = _write(tmp_path, text)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if '"ninety"' in row)
    with pytest.raises(JobSpecError, match=rf"{path}:{line}: "):
        load_job(path, {"name": "x"})
