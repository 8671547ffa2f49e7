"""The RPC-spanning expert's parts: the llamacpp-rpc job, the llama-expert rpc variant, the launcher and the sidecar.

Real processes throughout: ggml-rpc-server for the sidecar, llama-server on the tiny model for the launcher's local
fallback, the embedded registry for discovery. The split over two workers with the packaged model is in
test_cluster_rpc_split.py (slow).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import JOBS_DIR, RunningCluster, wait_for
from fleetmind.cluster.client import ServiceInstance
from fleetmind.cluster.expert_launcher import ExpertLauncherSettings, parse_args, rpc_command, wait_for_workers
from fleetmind.cluster.hcl import Evaluator
from fleetmind.cluster.jobspec import load_job
from fleetmind.llm import binaries
from fleetmind.llm.rpc_health import port_state


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_rpc_job_contract() -> None:
    job = load_job(
        JOBS_DIR / "llamacpp-rpc.nomad.hcl",
        {"rpc_server": "/bin/ggml-rpc-server", "python": "/venv/python", "workers": 3, "host": "10.0.0.5"},
    )
    assert job["ID"] == "llamacpp-rpc"
    group = job["TaskGroups"][0]
    assert group["Count"] == 3
    assert {p["Label"] for p in group["Networks"][0]["DynamicPorts"]} == {"rpc", "health"}
    (service,) = group["Services"]
    assert (service["Name"], service["Tags"], service["PortLabel"]) == ("llamacpp-rpc", ["rpc"], "rpc")
    (check,) = service["Checks"]
    assert (check["Type"], check["PortLabel"], check["Path"]) == ("http", "health", "/health")
    assert check["CheckRestart"]["IgnoreWarnings"] is True  # a busy worker (429) is never restarted
    worker, health = group["Tasks"]
    assert worker["Config"] == {
        "command": "/bin/ggml-rpc-server",
        "args": ["-H", "10.0.0.5", "-p", "${NOMAD_PORT_rpc}", "-t", "2"],
    }
    assert health["Config"]["command"] == "/venv/python"
    assert health["Config"]["args"][:2] == ["-m", "fleetmind.llm.rpc_health"]


def test_llama_expert_rpc_variant_wraps_the_same_command() -> None:
    base = {"llama_server": "/bin/llama-server", "model": "/m/x.gguf", "python": "/venv/python"}
    local = load_job(JOBS_DIR / "llama-expert.nomad.hcl", base)["TaskGroups"][0]["Tasks"][0]
    split = load_job(
        JOBS_DIR / "llama-expert.nomad.hcl",
        {
            **base,
            "rpc_workers": 2,
            "rpc_wait": 30,
            "rpc_gpu_layers": 30,
            "consul_addr": "10.0.0.1:8500",
            "extra_args": ["-lv", "4"],
        },
    )["TaskGroups"][0]["Tasks"][0]
    assert local["Config"]["command"] == "/bin/llama-server"
    assert split["Config"]["command"] == "/venv/python"
    launcher = ["-m", "fleetmind.cluster.expert_launcher", "--min-workers", "2", "--service", "llamacpp-rpc"]
    launcher += ["--wait", "30", "--n-gpu-layers", "30"]  # 30: SmolLM2's layers, the output layer stays here
    assert split["Config"]["args"] == [*launcher, "--", "/bin/llama-server", *local["Config"]["args"], "-lv", "4"]
    assert split["Env"]["CONSUL_HTTP_ADDR"] == "10.0.0.1:8500"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("${var.n > 0 ? var.a : var.b}", "A"),
        ("${var.n >= 3 ? var.a : var.b}", "B"),
        ('${var.a == "A" ? 1 : 2}', 1),
        ('${concat(var.n != 2 ? ["x"] : [], ["y", "${NOMAD_PORT_http}"])}', ["y", "${NOMAD_PORT_http}"]),
    ],
)
def test_hcl_conditionals_and_concat(expr: str, expected: object) -> None:
    assert Evaluator({"n": 2, "a": "A", "b": "B"}).value(expr) == expected


def test_rpc_command_and_arguments() -> None:
    workers = [
        ServiceInstance("llamacpp-rpc", "w1", "10.0.0.2", 50052),
        ServiceInstance("llamacpp-rpc", "w2", "10.0.0.3", 50052),
    ]
    assert rpc_command(["llama-server", "-m", "m"], workers, n_gpu_layers=99) == [
        "llama-server", "-m", "m", "--rpc", "10.0.0.2:50052,10.0.0.3:50052", "-ngl", "99",
    ]  # fmt: skip
    assert rpc_command(["llama-server"], [], n_gpu_layers=99) == ["llama-server"]
    args = parse_args(["--min-workers", "2", "--", "llama-server", "--port", "1"], ExpertLauncherSettings())
    assert (args.min_workers, args.service, args.command) == (2, "llamacpp-rpc", ["llama-server", "--port", "1"])
    with pytest.raises(SystemExit):
        parse_args(["--min-workers", "2"], ExpertLauncherSettings())


def test_workers_are_found_in_the_registry(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    closed = _free_port()
    rc.client.register_service("llamacpp-rpc", service_id="b", address="127.0.0.1", port=50060, tags=["rpc"])
    rc.client.register_service("llamacpp-rpc", service_id="a", address="127.0.0.1", port=50059, tags=["rpc"])
    rc.client.register_service("llamacpp-rpc", service_id="untagged", address="127.0.0.1", port=50061)
    rc.client.register_service(
        "llamacpp-rpc",
        service_id="dead",
        address="127.0.0.1",
        port=closed,
        tags=["rpc"],
        tcp_check=f"127.0.0.1:{closed}",
    )
    found = wait_for_workers(rc.client, minimum=2, timeout_s=10, poll_s=0.05, service="llamacpp-rpc", tag="rpc")
    assert [(w.id, w.port) for w in found] == [("a", 50059), ("b", 50060)]
    none = wait_for_workers(rc.client, minimum=3, timeout_s=0.2, poll_s=0.05, service="llamacpp-rpc", tag="rpc")
    assert none == []


@pytest.fixture
def rpc_worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    with (tmp_path / "worker.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(binaries.rpc_server()), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: port_state(port).listening, timeout=30, what="ggml-rpc-server listening")
        yield proc, port
    finally:
        _stop(proc)


def test_health_sidecar_says_free_busy_and_gone(rpc_worker: tuple[subprocess.Popen[bytes], int]) -> None:
    worker, rpc_port = rpc_worker
    port = _free_port()
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "fleetmind.llm.rpc_health", "--rpc-port", str(rpc_port), "--port", str(port)],
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/health"

    def status() -> int | None:
        try:
            return httpx.get(url, timeout=2).status_code
        except httpx.HTTPError:
            return None

    try:
        assert wait_for(status, what="sidecar answering") == 200
        with socket.create_connection(("127.0.0.1", rpc_port)):  # a client holding the worker, as an expert does
            wait_for(lambda: status() == 429, what="busy worker reported as 429")
            assert httpx.get(url, timeout=2).json() == {"rpc_port": rpc_port, "listening": True, "clients": 1}
        wait_for(lambda: status() == 200, what="worker free again")
        _stop(worker)
        wait_for(lambda: status() == 503, what="dead worker reported as 503")
    finally:
        _stop(sidecar)


@pytest.mark.parametrize("registry", ["empty", "unreachable"])
def test_launcher_starts_locally_without_workers(
    running_cluster: RunningCluster, tiny_model: Path, tmp_path: Path, registry: str
) -> None:
    consul = running_cluster.cluster.consul_addr if registry == "empty" else f"127.0.0.1:{_free_port()}"
    port = _free_port()
    server = [str(binaries.llama_server()), "-m", str(tiny_model), "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "expert.log"
    cmd = [sys.executable, "-m", "fleetmind.cluster.expert_launcher", "--min-workers", "1"]
    cmd += ["--wait", "0.3", "--poll", "0.1"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*cmd, "--consul-addr", consul, "--", *server, "-c", "512", "-t", "1", "--no-webui"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "CONSUL_HTTP_TOKEN": running_cluster.cluster.token},
        )
    try:
        wait_for(lambda: _healthy(port) or proc.poll() is not None, timeout=60, what="expert serving")
        assert proc.poll() is None, log.read_text()
        # exec kept the PID: the launcher's process is now llama-server itself, without --rpc.
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert Path(argv[0].decode()).name == "llama-server" and b"--rpc" not in argv
        assert "no RPC workers within 0s: starting locally on this machine" in log.read_text()
    finally:
        _stop(proc)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
