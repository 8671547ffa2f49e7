"""Start and stop task processes so that none outlives the orchestrator (the raw_exec driver's job).

Each task is the leader of its own session and process group (``start_new_session``), so a stop reaches
every process it forked: SIGTERM to the group, KillTimeout to finish, then SIGKILL. On Linux the task also
gets ``PR_SET_PDEATHSIG`` = SIGKILL, so it dies with the orchestrator even if that is killed with -9; and an
``atexit`` hook SIGKILLs every group still known when the interpreter exits (Ctrl-C that skipped a clean
stop).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
_LIVE_GROUPS: set[int] = set()
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: only async-signal-safe work here.
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_all_groups() -> None:
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    _LIVE_GROUPS.clear()


atexit.register(_kill_all_groups)


async def spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, stdout: Path, stderr: Path
) -> asyncio.subprocess.Process:
    """Start ``argv`` as a new process group, appending its output to the two log files."""
    stdout.parent.mkdir(parents=True, exist_ok=True)
    with stdout.open("ab") as out, stderr.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,
            preexec_fn=_die_with_parent if _libc is not None else None,
        )
    _LIVE_GROUPS.add(proc.pid)
    return proc


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def reap_group(proc: asyncio.subprocess.Process) -> None:
    """After the leader has exited, SIGKILL whatever it left behind in its group."""
    if proc.returncode is not None:
        _signal_group(proc.pid, signal.SIGKILL)
        _LIVE_GROUPS.discard(proc.pid)


async def stop_group(proc: asyncio.subprocess.Process, *, grace_s: float, sig: int = signal.SIGTERM) -> int:
    """``sig`` to the group, ``grace_s`` seconds to exit, then SIGKILL; returns the leader's status."""
    if proc.returncode is None:
        _signal_group(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            log.warning("process group %s ignored signal %s for %.1fs: killing it", proc.pid, sig, grace_s)
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
    reap_group(proc)
    assert proc.returncode is not None
    return proc.returncode
