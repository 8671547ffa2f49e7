"""The light fallback model of an expert: the design's "graceful LLM failover" at start-up.

An expert on an old machine may be unable to serve its main model: the file is missing or damaged, it does not fit
in the memory that is free, or llama-server keeps dying while loading it. :func:`choose_model` looks at those three
things before each start and answers the model to serve — the main one, or the light fallback with the reason — so
the expert always comes up with at least a basic capability. Quick crashes are remembered in a small JSON state
file (the task's own folder on Nomad): two starts of the main model within ``QUICK_CRASH_S`` of each other mean it
does not load here, and the next start uses the fallback; a start of the fallback resets the count, so a later
restart tries the main model again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from fleetmind.atomic import write_atomic

QUICK_CRASH_S = 60.0
QUICK_CRASHES_BEFORE_FALLBACK = 2


@dataclass(frozen=True)
class Choice:
    model: str
    reason: str | None  # None when the main model is served


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def unusable_reason(model: Path, *, available: int | None) -> str | None:
    """Why ``model`` cannot be served here, or None."""
    try:
        with model.open("rb") as fh:
            magic = fh.read(4)
        size = model.stat().st_size
    except OSError as exc:
        return f"cannot read {model}: {exc.strerror or exc}"
    if magic != b"GGUF":
        return f"{model} is not a GGUF file"
    # llama-server maps the weights and needs some room for the context on top.
    if available is not None and size * 1.1 > available:
        return f"{model} ({size >> 20} MiB) does not fit in the {available >> 20} MiB of free memory"
    return None


def _read_state(state_file: Path) -> dict[str, object]:
    try:
        data = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state_file: Path, state: dict[str, object]) -> None:
    write_atomic(state_file, json.dumps(state).encode())


def choose_model(
    main: str,
    fallback: str | None,
    *,
    state_file: Path | None = None,
    available: int | None = None,
    now: float | None = None,
) -> Choice:
    """The model to start now, recording the start in ``state_file`` for the quick-crash count."""
    now = time.time() if now is None else now
    if not fallback:
        return Choice(main, None)
    reason = unusable_reason(Path(main), available=available)
    state = _read_state(state_file) if state_file else {}
    quick = 0
    if reason is None and state.get("model") == main:
        last = state.get("started")
        if isinstance(last, int | float) and now - last < QUICK_CRASH_S:
            previous = state.get("quick_restarts")
            quick = (previous if isinstance(previous, int) else 0) + 1
    if reason is None and quick >= QUICK_CRASHES_BEFORE_FALLBACK:
        reason = f"{main} was started {quick + 1} times within {QUICK_CRASH_S:.0f}s without staying up"
    if reason is not None and unusable_reason(Path(fallback), available=None) is not None:
        reason = None  # the fallback is no better: keep trying the main model
    chosen = fallback if reason else main
    if state_file:
        _write_state(state_file, {"model": chosen, "started": now, "quick_restarts": 0 if reason else quick})
    return Choice(chosen, reason)


def with_model(command: list[str], model: str) -> list[str]:
    """``command`` with the value of its ``-m``/``--model`` option replaced by ``model``."""
    out = list(command)
    for i, arg in enumerate(out[:-1]):
        if arg in ("-m", "--model"):
            out[i + 1] = model
            return out
    raise ValueError("the llama-server command has no -m/--model option")


def model_of(command: list[str]) -> str:
    for i, arg in enumerate(command[:-1]):
        if arg in ("-m", "--model"):
            return command[i + 1]
    raise ValueError("the llama-server command has no -m/--model option")
