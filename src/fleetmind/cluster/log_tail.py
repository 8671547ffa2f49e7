"""The tail of a task's log through Nomad's ``GET /v1/client/fs/logs/:alloc_id`` (the embedded orchestrator serves the
same route): the request's parameters, a bounded read of the answer, and the tail cut at a line's start.

:meth:`fleetmind.cluster.client.ClusterClient.task_logs` puts them together.
"""

from __future__ import annotations

from collections.abc import Iterable

LOG_TAIL_BYTES = 4096  # what task_logs reads of a log by default: its last 4 KiB


def tail_params(task: str, kind: str, max_bytes: int) -> dict[str, str]:
    """Query parameters for the last ``max_bytes`` of ``kind`` (stdout or stderr), plus one byte: whether the tail
    begins at a line's start (the byte before it is a newline)."""
    if kind not in ("stdout", "stderr"):
        raise ValueError(f"log type must be stdout or stderr, not {kind!r}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
    return {"task": task, "type": kind, "origin": "end", "offset": str(max_bytes + 1), "plain": "true"}


def read_bounded(pieces: Iterable[bytes], want: int) -> bytes:
    """At most the last ``want`` bytes of ``pieces``, reading no further once that many arrived."""
    data = b""
    for piece in pieces:
        data += piece
        if len(data) >= want:
            break
    return data[-want:]


def cut_tail(data: bytes, max_bytes: int) -> str:
    """The last ``max_bytes`` of ``data`` as UTF-8 (bad bytes replaced), without a partial first line."""
    if len(data) <= max_bytes:
        return data.decode("utf-8", "replace")
    text = data[-max_bytes:].decode("utf-8", "replace")
    if data[-max_bytes - 1 : -max_bytes] == b"\n" or "\n" not in text:
        return text
    return text.split("\n", 1)[1]  # the tail began mid-line
