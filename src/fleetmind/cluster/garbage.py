"""Garbage: what Nomad's garbage collection (``PUT /v1/system/gc``) removes, decided on Nomad's API shapes.

One rule for both sides: the embedded orchestrator collects by it, and the supervisor measures by it what a
collection would free before it asks for one. As Nomad's core scheduler decides: a job is garbage when it is dead
and either stopped or a batch job (a dead service job that was not stopped stays); an allocation is garbage when it
is terminal (complete, failed, lost) and its job is garbage or gone, or it was stopped, or a newer allocation holds
its slot (``job.group[index]``). A running allocation, or the newest one of a slot whose job still wants it (a
failed allocation a person may still read), is never garbage.

:func:`alloc_files` is the embedded orchestrator's file layout: an allocation's folder ``<data dir>/<alloc id>``
and its tasks' logs ``<logs dir>/<job>.<group>[.<index>].<task>.std{out,err}.log`` (one log per slot, so a log
still written by a live allocation of the slot is kept). Only paths directly inside those two folders are ever
named, whatever a job's ID holds.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ALLOCS = "allocs"  # the embedded orchestrator's data dir, under its logs dir
TERMINAL = ("complete", "failed", "lost")


def job_is_garbage(job: Mapping[str, Any]) -> bool:
    """Nomad's ``jobIsGCable``: dead, and stopped or a batch job (``Job`` or ``JobListStub``)."""
    if job.get("Status") != "dead":
        return False
    return bool(job.get("Stop")) or job.get("Type") in ("batch", "sysbatch")


def collectable(allocs: Iterable[Mapping[str, Any]], jobs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The allocations (``AllocationListStub``) that are garbage; ``jobs`` maps job ID → ``JobListStub``."""
    allocs = list(allocs)
    newest: dict[str, int] = {}
    for alloc in allocs:
        newest[alloc["Name"]] = max(newest.get(alloc["Name"], 0), int(alloc.get("CreateIndex") or 0))
    out = []
    for alloc in allocs:
        if alloc.get("ClientStatus") not in TERMINAL:
            continue
        job = jobs.get(alloc["JobID"])
        if (
            job is None
            or job_is_garbage(job)
            or alloc.get("DesiredStatus") in ("stop", "evict")
            or int(alloc.get("CreateIndex") or 0) < newest[alloc["Name"]]
        ):
            out.append(dict(alloc))
    return out


def _inside(base: Path, name: str) -> Path | None:
    path = base / name
    return path if "/" not in name and name not in ("", ".", "..") else None


def alloc_files(alloc: Mapping[str, Any], logs_dir: Path, data_dir: Path) -> list[Path]:
    """The embedded orchestrator's files of one allocation: its folder and its tasks' logs."""
    name = str(alloc.get("Name") or "")
    index = int(name.rsplit("[", 1)[1].rstrip("]")) if name.endswith("]") and "[" in name else 0
    stem = f"{alloc['JobID']}.{alloc['TaskGroup']}" + (f".{index}" if index else "")
    names = [f"{stem}.{task}.{kind}.log" for task in alloc.get("TaskStates") or {} for kind in ("stdout", "stderr")]
    paths = [_inside(data_dir, str(alloc["ID"])), *(_inside(logs_dir, n) for n in names)]
    return [p for p in paths if p is not None]


def garbage(
    allocs: Iterable[Mapping[str, Any]], jobs: Mapping[str, Mapping[str, Any]], logs_dir: Path, data_dir: Path
) -> tuple[list[str], list[Path]]:
    """(the garbage allocations' IDs, the existing files a collection removes: none a kept allocation uses)."""
    allocs = list(allocs)
    dead = collectable(allocs, jobs)
    dead_ids = {a["ID"] for a in dead}
    kept = {p for a in allocs if a["ID"] not in dead_ids for p in alloc_files(a, logs_dir, data_dir)}
    paths = {p for a in dead for p in alloc_files(a, logs_dir, data_dir) if p not in kept}
    return sorted(dead_ids), sorted(p for p in paths if p.exists() or p.is_symlink())


def disk_bytes(paths: Iterable[Path], *, device: int | None = None) -> int:
    """Bytes the files take on disk (``du``), counting only those on ``device`` when given."""
    total = 0
    for root in paths:
        walk = [(str(root), [], [])] if not root.is_dir() or root.is_symlink() else os.walk(root)
        for folder, _dirs, files in walk:
            for path in [folder, *(os.path.join(folder, f) for f in files)]:
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if device is None or st.st_dev == device:
                    total += st.st_blocks * 512
    return total


def remove(paths: Iterable[Path]) -> None:
    """Delete files and folders (what :func:`garbage` named); a path already gone is fine."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
