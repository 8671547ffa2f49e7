"""Why a process ended, in words a user can act on.

One place turns an exit code and a signal (as Nomad's ``Terminated`` task event carries them) plus the last lines of
the process's stderr into a sentence: the embedded orchestrator writes it into the task event and the task's log,
``fleetmind status``, ``/api/status`` and Mission Control show it, ``fleetmind up`` fails with it, and the llama.cpp
build proof (:mod:`fleetmind.llm.cpu_fit`) reports it.
"""

from __future__ import annotations

import signal
from pathlib import Path

# Signals with a cause worth naming; the rest get their name only.
_CAUSES: dict[int, str] = {
    signal.SIGILL: (
        "illegal instruction: this build uses CPU instructions this machine cannot run "
        "(rebuild with `make llama`: it proves the build on this CPU and sets aside what cannot run)"
    ),
    signal.SIGKILL: "killed outright, most often by the kernel's out-of-memory killer (see `dmesg`); give it less "
    "work (a smaller model or context) or the machine more memory",
    signal.SIGSEGV: "segmentation fault: a bug in the program, or a broken build or model file",
    signal.SIGBUS: "bus error: a model file changed or shrank while mapped, or the disk failed",
    signal.SIGABRT: "aborted: the program stopped itself after a failed check (see the last log lines)",
    signal.SIGFPE: "arithmetic error (division by zero and the like)",
}
# Signals a supervisor sends to stop a task: an end by these is a stop, not a crash.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
# A signal that no restart can fix: the same binary on the same CPU dies the same way.
FATAL_SIGNALS = frozenset({signal.SIGILL})


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def describe_exit(exit_code: int, sig: int = 0, stderr_tail: str = "") -> str:
    """A sentence for a process end: ``killed by SIGILL (illegal instruction: …)`` or ``exited with code 1: …``."""
    if sig:
        cause = _CAUSES.get(sig)
        text = f"killed by {signal_name(sig)}" + (f" ({cause})" if cause else "")
    elif exit_code == 0:
        text = "exited normally (code 0)"
    else:
        text = f"exited with code {exit_code}"
    tail = " | ".join(line.strip() for line in stderr_tail.strip().splitlines()[-3:] if line.strip())
    if tail and exit_code != 0:
        text += f"; last output: {tail[-400:]}"
    return text


def tail_lines(path: Path, lines: int = 5, max_bytes: int = 8192) -> str:
    """The last ``lines`` lines of a log file ('' if it cannot be read), reading at most ``max_bytes``."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
