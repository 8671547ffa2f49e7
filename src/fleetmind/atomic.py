"""Crash-safe file replacement: the one way fleetmind writes a file that must never be seen half-written.

The data goes to a uniquely named temporary file in the same folder, is fsynced, renamed over the target with
``os.replace`` and the folder is fsynced, so a reader (or a process restarted after ``kill -9``) sees the old file or
the new one, never a mix. Used for API keys, the inventory, memory snapshots, saved state and launcher state.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (parents created); the new file gets ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
