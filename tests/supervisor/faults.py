"""Fault jobs for the supervisor: small real programs (python -c, sh) and a real llama-server, as Nomad API jobs.

Shared by the fault-injection tests and ``bench.healing``. Each builder returns a job that, run on the embedded
orchestrator, fails the way its name says; the supervisor must detect, diagnose and heal (or escalate) it.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from fleetmind.cluster.client import ClusterClient

SEC = 1_000_000_000
TASK_SERVER = Path(__file__).resolve().parents[1] / "cluster" / "task_server.py"
SLEEPER = "import time; time.sleep(3600)"


def job(
    job_id: str,
    command: str,
    args: list[str],
    *,
    memory_mb: int = 64,
    memory_max_mb: int = 0,
    static_port: int | None = None,
    check: bool = False,
    meta: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    attempts: int = 1,
) -> dict[str, Any]:
    """A service job with one task; ``check`` adds an HTTP /health check on port label ``http``."""
    network: dict[str, Any] = (
        {"ReservedPorts": [{"Label": "http", "Value": static_port}]}
        if static_port
        else {"DynamicPorts": [{"Label": "http", "Value": 0}]}
    )
    resources: dict[str, Any] = {"CPU": 100, "MemoryMB": memory_mb}
    if memory_max_mb:
        resources["MemoryMaxMB"] = memory_max_mb
    group: dict[str, Any] = {
        "Name": "main",
        "Count": 1,
        "RestartPolicy": {"Attempts": attempts, "Interval": 60 * SEC, "Delay": SEC // 10, "Mode": "fail"},
        "Networks": [network],
        "Tasks": [
            {
                "Name": "task",
                "Driver": "raw_exec",
                "Config": {"command": command, "args": args},
                "Env": env or {},
                "Resources": resources,
                "KillTimeout": SEC,
            }
        ],
    }
    if check:
        group["Services"] = [
            {
                "Name": job_id,
                "PortLabel": "http",
                "Checks": [{"Name": "health", "Type": "http", "Path": "/health", "Interval": SEC // 2, "Timeout": SEC}],
            }
        ]
    out: dict[str, Any] = {
        "ID": job_id,
        "Name": job_id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [group],
    }
    if meta:
        out["Meta"] = meta
    return out


def crash_loop(tmp: Path) -> dict[str, Any]:
    """Crashes its first three starts (a dependency not up yet), then runs."""
    counter = tmp / "crash-count"
    code = (
        "import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); n = int(p.read_text()) if p.exists() else 0; "
        "p.write_text(str(n + 1)); print('connection refused by dependency', file=sys.stderr) if n < 3 else None; "
        "sys.exit(3) if n < 3 else time.sleep(3600)"
    )
    return job("crashloop", sys.executable, ["-c", code, str(counter)])


def oom(_tmp: Path) -> dict[str, Any]:
    """Needs ~120 MB, limited to 80 MB."""
    code = "import time; b = bytearray(120 * 2**20); time.sleep(3600)"
    return job("oom", sys.executable, ["-c", code], memory_mb=64, memory_max_mb=80)


def sigill(tmp: Path) -> dict[str, Any]:
    """A 'build' that dies by SIGILL, with a portable one beside it."""
    fast, portable = tmp / "fast.sh", tmp / "portable.sh"
    fast.write_text("#!/bin/sh\nkill -ILL $$\n")
    portable.write_text("#!/bin/sh\nexec sleep 3600\n")
    fast.chmod(0o755)
    portable.chmod(0o755)
    return job("sigill", str(fast), [], meta={"fleetmind_portable_command": str(portable)})


def port_taken(port: int) -> dict[str, Any]:
    """Binds static ``port``, which someone else holds."""
    code = (
        "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
        "time.sleep(3600)"
    )
    return job("porttaken", sys.executable, ["-c", code, "${NOMAD_PORT_http}"], static_port=port)


def missing_model(llama_server: Path, fallback: Path) -> dict[str, Any]:
    """llama-server on a model file that is not there; the job names its fallback."""
    args = ["-m", "/nonexistent/models/gone.gguf", "--host", "127.0.0.1", "--port", "${NOMAD_PORT_http}"]
    args += ["-c", "256", "-t", "1", "--no-webui"]
    return job(
        "missingmodel",
        str(llama_server),
        args,
        memory_mb=256,
        check=True,
        meta={"fleetmind_fallback_model": str(fallback)},
    )


def disk_full(full_dir: Path) -> dict[str, Any]:
    """Writes 8 MB of state into ``full_dir`` (a small full tmpfs), then serves."""
    code = "import sys, time; open(sys.argv[1] + '/state.bin', 'wb').write(b'0' * 8 * 2**20); time.sleep(3600)"
    return job("diskfull", sys.executable, ["-c", code, str(full_dir)])


def chatter(size: int) -> dict[str, Any]:
    """A batch job that logs ``size`` bytes of chatter to stdout and finishes."""
    code = (
        "import sys; n = int(sys.argv[1]); chunk = b'chatter: item processed, all good\\n' * 2048; "
        "[sys.stdout.buffer.write(chunk) for _ in range(n // len(chunk))]"
    )
    out = job("chatter", sys.executable, ["-c", code, str(size)])
    out["Type"] = "batch"
    return out


def fill_with_logs(client: ClusterClient, state_dir: Path, *, leave: int = 256 * 1024, timeout: float = 60) -> None:
    """Fill ``state_dir`` (the cluster's own) the way a stack fills it: a chatty job's log, until ``leave`` bytes
    are free; returns once the job has finished (its allocation is dead: garbage for the next collection)."""
    client.register_job(chatter(shutil.disk_usage(state_dir).free - leave))
    deadline = time.monotonic() + timeout
    while client.job("chatter")["Status"] != "dead":
        if time.monotonic() > deadline:
            raise AssertionError(f"the chatty job did not finish within {timeout}s")
        time.sleep(0.1)


def hung(tmp: Path) -> dict[str, Any]:
    """An HTTP server with a health check (the test SIGSTOPs it)."""
    return job("hung", sys.executable, [str(TASK_SERVER), "${NOMAD_PORT_http}"], check=True)


def good_then_bad(_tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Version 0 runs; the update (version 1) crash-loops on a bad argument."""
    good = job("badupdate", sys.executable, ["-c", SLEEPER])
    bad = job("badupdate", sys.executable, ["-c", "import sys; sys.exit('unknown option --frobnicate')"])
    return good, bad


def llama_build_with_sigill_variant(bin_dir: Path) -> list[str]:
    """A copy of the installed llama.cpp build in ``bin_dir`` with one more CPU variant, which ggml's dispatch
    prefers and which dies by SIGILL (tests/llm/test_cpu_fit.py's AMX ``tilezero`` without the tile permission);
    returns the real variants."""
    from tests.llm.test_cpu_fit import _copy_build, _fake_amx_variant

    variants = _copy_build(bin_dir)
    _fake_amx_variant(bin_dir, bin_dir / variants[0])
    return variants


def llama_expert(llama_server: Path, model: Path, port: int) -> dict[str, Any]:
    """jobs/llama-expert.nomad.hcl as `fleetmind up` renders it (the default stack: no fallback model, so the task
    is llama-server itself), with its own llama-server."""
    from fleetmind.cluster.jobspec import load_job

    variables = {"llama_server": str(llama_server), "model": str(model), "expert_name": "tiny", "port": port}
    variables |= {"host": "127.0.0.1", "threads": 1, "ctx_size": 512, "python": sys.executable}
    return load_job(Path(__file__).resolve().parents[2] / "jobs" / "llama-expert.nomad.hcl", variables)
