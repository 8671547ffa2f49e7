"""A hard memory limit for one task process, and whether the kernel's OOM killer ended it (raw_exec's cgroup).

Nomad enforces a task's ``memory_max`` (``Resources.MemoryMaxMB``) with a cgroup; so does the embedded
orchestrator, when the machine lets it: one memory cgroup per task run (cgroup v1's ``memory`` hierarchy, or v2
with the memory controller), ``limit_in_bytes``/``memory.max`` set to the limit (and swap off for it), and the
process moved into it before it executes its program (the argv is wrapped in ``sh -c 'echo $$ > procs; exec
"$@"'``, so the task is still one process, the same PID). When the task ends, the cgroup's ``oom_kill`` counter
says whether the OOM killer ended it, which the task runner reports as Nomad's docker driver does
(``Details["oom_killed"]``, message "OOM Killed"). Without a writable memory cgroup the limit is not enforced and
the runner says so in the task's log; nothing else changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")
_PARENT = "fleetmind"


@dataclass(frozen=True)
class MemoryCgroup:
    path: Path
    version: int
    limit_mb: int

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this cgroup (the shell joins it, then becomes the program)."""
        return ["/bin/sh", "-c", f'echo $$ > "{self.procs}" && exec "$@"', "sh", *argv]

    def oom_kills(self) -> int:
        """How many processes of this cgroup the OOM killer has ended."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = (self.path / name).read_text()
        except OSError:
            return 0
        match = re.search(r"^oom_kill (\d+)$", text, re.M)
        return int(match.group(1)) if match else 0

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def create(name: str, limit_mb: int, *, v1_root: Path = V1_ROOT, v2_root: Path = V2_ROOT) -> MemoryCgroup | None:
    """A fresh memory cgroup limited to ``limit_mb``, or None where this machine gives none (logged)."""
    if limit_mb <= 0:
        raise ValueError(f"a memory limit must be positive, got {limit_mb} MB")
    leaf = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] + "-" + uuid.uuid4().hex[:8]
    limit = str(limit_mb * 1024 * 1024)
    try:
        if (v1_root / "memory.limit_in_bytes").exists():
            path = v1_root / _PARENT / leaf
            path.mkdir(parents=True)
            _write(path / "memory.limit_in_bytes", limit)
            if (path / "memory.memsw.limit_in_bytes").exists():
                with contextlib.suppress(OSError):  # swap accounting may be off; the limit still holds
                    _write(path / "memory.memsw.limit_in_bytes", limit)
            return MemoryCgroup(path, 1, limit_mb)
        controllers = v2_root / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            parent = v2_root / _PARENT
            parent.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                _write(v2_root / "cgroup.subtree_control", "+memory")
            _write(parent / "cgroup.subtree_control", "+memory")
            path = parent / leaf
            path.mkdir()
            _write(path / "memory.max", limit)
            with contextlib.suppress(OSError):
                _write(path / "memory.swap.max", "0")
            return MemoryCgroup(path, 2, limit_mb)
    except OSError as exc:
        log.warning("no memory cgroup for %s (%s): its memory limit is not enforced", name, exc)
        return None
    log.warning("no writable memory cgroup on this machine: the memory limit of %s is not enforced", name)
    return None


def available() -> bool:
    """Whether :func:`create` can enforce a limit here (a throwaway cgroup is made and removed)."""
    group = create(f"probe-{os.getpid()}", 64)
    if group is None:
        return False
    group.remove()
    return True
