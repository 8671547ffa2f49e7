"""Diagnose: everything a decision needs about one fault, gathered through the cluster client, bounded in size.

The allocation's status, the failing task's last events (type, message, exit code, signal, cause, OOM), the last
lines of its stderr (``log_tail``) and stdout (``stdout_tail``) read through Nomad's ``GET
/v1/client/fs/logs/:alloc_id`` (the last 4 KiB of each; the embedded orchestrator serves the same route, so both
backends are one code path; a log the cluster will not give is named in ``log_errors``), the job's version
history, the task's resources, the free space in the state dir, and whether the model file it serves exists. When
the state dir is (nearly) full: what a garbage collection would free there (``garbage``: the dead allocations, by
:mod:`fleetmind.cluster.garbage`'s rule, and the bytes their files take on that disk). On a SIGILL of a llama.cpp
program: its build folder and the CPU variants there (``llama_cpp``).
Every text is cut, and the whole diagnosis is at most :data:`MAX_BYTES` of JSON, so neither the audit nor the
LLM's prompt can be flooded by one noisy task.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetmind.cluster import garbage
from fleetmind.cluster.client import ClusterClient, ClusterError
from fleetmind.llm import proof
from fleetmind.supervisor.detect import Fault

MAX_BYTES = 8192
MAX_EVENTS = 6
LOG_LINES = 15
LOG_BYTES = 4096  # what is read of each log (stderr, stdout): its last 4 KiB, through the cluster's API
MIN_FREE_MB = 16  # less free in the state dir than this (or a quarter of a small disk) counts as full
DISK_FULL = ("no space left on device", "enospc", "disk quota exceeded")
LLAMA_PROGRAMS = ("llama-server", "llama-cli", "rpc-server")


def _cut(text: Any, limit: int) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def model_index(args: list[str]) -> int | None:
    """Where the model path of a llama-server command line is: the value of its *last* ``-m``/``--model`` (a
    launcher in front, ``python -m fleetmind.cluster.expert_launcher ... -- llama-server -m M``, has its own
    ``-m``), or None."""
    found = None
    for i, arg in enumerate(args[:-1]):
        if arg in ("-m", "--model"):
            found = i + 1
    if found is None or "--" in args[found:]:
        return None
    return found


def model_path(args: list[str]) -> str | None:
    index = model_index(args)
    return args[index] if index is not None else None


def llama_bin_dir(argv: list[str]) -> Path | None:
    """The folder of the llama.cpp program a command runs (itself, or after a launcher's ``--``), or None."""
    for arg in argv:
        if Path(arg).name in LLAMA_PROGRAMS and Path(arg).is_file():
            return Path(arg).parent
    return None


def low_water_mb(total_mb: object) -> float:
    """Below this many free MB a disk is full: :data:`MIN_FREE_MB`, or a quarter of a disk smaller than 64 MB."""
    return min(MIN_FREE_MB, total_mb / 4) if isinstance(total_mb, int) and total_mb > 0 else MIN_FREE_MB


def measure_garbage(client: ClusterClient, logs_dir: Path, disk: Path) -> dict[str, int]:
    """What a garbage collection would free on ``disk``'s file system: the embedded orchestrator's files of every
    dead allocation (``<logs dir>/allocs/<id>`` and the logs no live allocation writes)."""
    jobs = {j["ID"]: j for j in client.jobs()}
    ids, paths = garbage.garbage(client.allocations(), jobs, logs_dir, logs_dir / garbage.ALLOCS)
    return {"allocations": len(ids), "bytes": garbage.disk_bytes(paths, device=os.stat(disk).st_dev)}


@dataclass(frozen=True)
class Diagnosis:
    fault: Fault
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.data

    def text(self) -> str:
        """Every text in the diagnosis, lower-cased (what the rules match against)."""
        return json.dumps(self.data).lower()


def find_task(job: dict[str, Any], task_name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(group, task) of ``job`` for ``task_name``."""
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            if task.get("Name") == task_name:
                return group, task
    return None


def diagnose(
    client: ClusterClient,
    fault: Fault,
    *,
    state_dir: Path | None = None,
    logs_dir: Path | None = None,
) -> Diagnosis:
    alloc = client.allocation(fault.alloc)
    job = alloc.get("Job") or client.job(fault.job)
    current = client.job(fault.job)
    state = (alloc.get("TaskStates") or {}).get(fault.task) or {}
    events = [
        {
            "type": e.get("Type"),
            "message": _cut(e.get("DisplayMessage"), 160),
            "exit_code": e.get("ExitCode"),
            "signal": e.get("Signal"),
            "cause": _cut((e.get("Details") or {}).get("cause"), 400),
            "oom_killed": (e.get("Details") or {}).get("oom_killed") == "true",
        }
        for e in (state.get("Events") or [])[-MAX_EVENTS:]
    ]
    versions = client.job_versions(fault.job)
    found = find_task(job, fault.task)
    group, task = found if found else ({}, {})
    config = task.get("Config") or {}
    args = [str(a) for a in config.get("args") or []]
    model = model_path(args)
    data: dict[str, Any] = {
        "job": fault.job,
        "fault": fault.to_dict(),
        "allocation": {
            "id": alloc.get("ID"),
            "client_status": alloc.get("ClientStatus"),
            "desired_status": alloc.get("DesiredStatus"),
            "job_version": fault.job_version,
            "task_state": state.get("State"),
            "failed": bool(state.get("Failed")),
            "restarts": int(state.get("Restarts") or 0),
        },
        "events": events,
        "versions": {
            "current": int(current.get("Version") or 0),
            "history": [int(v.get("Version") or 0) for v in versions[:5]],
            "last_update_age_s": round(time.time() - int(current.get("SubmitTime") or 0) / 1e9, 1),
        },
        "resources": {
            "cpu": int((task.get("Resources") or {}).get("CPU") or 0),
            "memory_mb": int((task.get("Resources") or {}).get("MemoryMB") or 0),
            "memory_max_mb": int((task.get("Resources") or {}).get("MemoryMaxMB") or 0),
        },
        "command": _cut(" ".join([str(config.get("command") or ""), *args]), 400),
        "static_ports": [
            int(p.get("Value") or 0) for n in group.get("Networks") or [] for p in n.get("ReservedPorts") or []
        ],
        "meta": {k: _cut(v, 200) for k, v in sorted((job.get("Meta") or {}).items()) if k.startswith("fleetmind_")},
    }
    if model is not None:
        data["model"] = {"path": _cut(model, 300), "exists": Path(model).is_file()}
    if state_dir is not None:
        try:
            usage = shutil.disk_usage(state_dir)
            data["state_dir"] = {"free_mb": usage.free // 2**20, "total_mb": usage.total // 2**20}
        except OSError as exc:
            data["state_dir"] = {"error": _cut(exc, 200)}
    for kind, key in (("stderr", "log_tail"), ("stdout", "stdout_tail")):
        try:
            tail = client.task_logs(fault.alloc, fault.task, kind, max_bytes=LOG_BYTES)
        except ClusterError as exc:
            data.setdefault("log_errors", {})[kind] = _cut(exc, 200)
            continue
        data[key] = _cut("\n".join(tail.splitlines()[-LOG_LINES:]), 1500)
    disk = data.get("state_dir") or {}
    full = "free_mb" in disk and disk["free_mb"] < low_water_mb(disk["total_mb"])
    if (
        state_dir is not None
        and logs_dir is not None
        and (full or any(s in json.dumps(data).lower() for s in DISK_FULL))
    ):
        try:
            data["garbage"] = measure_garbage(client, Path(logs_dir), Path(state_dir))
        except (ClusterError, OSError) as exc:
            data["garbage"] = {"error": _cut(exc, 200)}
    if fault.kind == "sigill" and (bin_dir := llama_bin_dir([str(config.get("command") or ""), *args])):
        aside = sorted(proof.variant_of(p.name) for p in (bin_dir / proof.SET_ASIDE).glob("libggml-cpu-*.so"))
        data["llama_cpp"] = {"bin_dir": _cut(bin_dir, 300), "variants": proof.variants(bin_dir), "set_aside": aside}
    while len(json.dumps(data)) > MAX_BYTES and data["events"]:
        data["events"] = data["events"][1:]
    if len(json.dumps(data)) > MAX_BYTES:
        data["log_tail"] = _cut(data.get("log_tail"), 200)
        data["stdout_tail"] = _cut(data.get("stdout_tail"), 200)
    return Diagnosis(fault, data)
