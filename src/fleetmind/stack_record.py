"""Where a running ``fleetmind up`` listens: ``<state dir>/stack.json``, so ``status``, ``down`` and ``doctor`` find it.

``up`` writes the record (atomically, :func:`fleetmind.atomic.write_atomic`) before it starts anything, marks it ready
once every service is healthy, and removes it when it stops cleanly. A record whose process is gone (``up`` was
killed) is *stale*: :func:`find_stack` says so and nobody trusts its addresses.

Errors: :class:`RecordError` (a ``ValueError``) for a record that cannot be read or is not one of ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from fleetmind.atomic import write_atomic
from fleetmind.stack_settings import StackSettings


class RecordError(ValueError):
    """The record file exists but cannot be read or validated; the message names the file."""


class StackRecord(BaseModel):
    """What one ``fleetmind up`` was started with and where it listens."""

    pid: int = Field(gt=0, description="The `up` process; `down` signals it.")
    started: float = Field(description="When `up` started (Unix seconds).")
    ready: bool = Field(default=False, description="Every service passed its health check.")
    host: str
    ports: dict[str, int] = Field(description="Field name (gateway_port, nomad_port ...) -> port.")
    nomad_addr: str
    consul_addr: str
    gateway_url: str
    ui_url: str
    state_dir: Path
    cluster_token_file: Path

    @classmethod
    def of(cls, cfg: StackSettings, *, pid: int | None = None, ready: bool = False) -> StackRecord:
        return cls(
            pid=pid or os.getpid(),
            started=time.time(),
            ready=ready,
            host=cfg.host,
            ports=cfg.ports(),
            nomad_addr=cfg.nomad_addr,
            consul_addr=cfg.consul_addr,
            gateway_url=cfg.gateway_url,
            ui_url=cfg.ui_url,
            state_dir=cfg.state_dir,
            cluster_token_file=cfg.cluster_token_file,
        )


@dataclass(frozen=True)
class Found:
    """The record in a state dir and whether its process still runs (``stale`` when it does not)."""

    record: StackRecord
    path: Path
    stale: bool


def write_record(path: Path, record: StackRecord) -> None:
    write_atomic(path, (record.model_dump_json(indent=2) + "\n").encode(), mode=0o644)


def read_record(path: Path) -> StackRecord | None:
    """The record at ``path``; None when there is none."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(f"cannot read {path}: {exc}") from exc
    try:
        return StackRecord.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise RecordError(f"{path} is not a fleetmind stack record ({exc}); remove it if no stack runs") from exc


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs and is a fleetmind process (a recycled pid of another program does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc to ask: the pid exists, trust it
    if not cmdline:
        return False  # a zombie: exited, not yet reaped
    return b"fleetmind" in cmdline


def find_stack(path: Path) -> Found | None:
    """The stack recorded at ``path`` (live or stale), or None when no record exists."""
    record = read_record(path)
    if record is None:
        return None
    return Found(record=record, path=path, stale=not pid_alive(record.pid))


def remove_record(path: Path, pid: int) -> None:
    """Remove the record if it is ``pid``'s (a newer `up`'s record is left alone)."""
    with contextlib.suppress(RecordError):
        record = read_record(path)
        if record is not None and record.pid == pid:
            path.unlink(missing_ok=True)
