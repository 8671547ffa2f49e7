"""The audit log: one JSON line per tool call, appended and fsynced, so it survives crashes and restarts.

Each line records the call id, tool, who asked, the arguments, the risk and the policy's action, the approval (who
decided, how), the outcome status and error, a bounded preview of the output, and timings. A call that is about
to run is written first as ``status: "started"`` and again when it ends, so a tool that crashes the process or
hangs still left its line behind; :meth:`AuditLog.read` shows each call once, as its latest line. Every string
is cut to a bounded length (with a ``… (N chars)`` marker) and text that is not valid Unicode is escaped, so no
record can fail to be written or grow the log without bound. The file is only ever appended to; a line torn by
a crash is closed with a newline before the next one and skipped when reading.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["AuditLog"]

PREVIEW_CHARS = 2000
#: No single string of a record (an error, a requester, a reason) is kept longer than this.
FIELD_CHARS = 8000


def truncate(text: str, limit: int = FIELD_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a marker that says how long it was."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def preview(value: Any, limit: int = PREVIEW_CHARS) -> Any:
    """``value`` itself when its JSON is short, else its JSON cut to ``limit`` characters."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return value if len(text) <= limit else truncate(text, limit)


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return truncate(value)
    if isinstance(value, dict):
        return {k: _bounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(v) for v in value]
    return value


def _line(record: dict[str, Any]) -> bytes:
    bounded = _bounded(record)
    text = json.dumps(bounded, default=str, ensure_ascii=False, separators=(",", ":"))
    try:
        return (text + "\n").encode()
    except UnicodeEncodeError:
        # a lone surrogate: ASCII JSON escapes it as \udXXX, so the line is still written, and still readable
        return (json.dumps(bounded, default=str, separators=(",", ":")) + "\n").encode()


class AuditLog:
    """Append-only JSON-lines file (``STATE_DIR/audit/tools.jsonl``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        line = _line(record)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and _last_byte(self.path, size) != b"\n":
                    line = b"\n" + line  # a crash tore the last line: keep it separate from this one
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, limit: int | None = None) -> list[dict[str, Any]]:
        """One record per call, its latest line, oldest call first (the last ``limit`` when given)."""
        if not self.path.exists():
            return []
        records: dict[Any, dict[str, Any]] = {}
        for n, raw in enumerate(self.path.read_bytes().splitlines()):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                records[record.get("call_id") or f"line-{n}"] = record
        out = list(records.values())
        return out[-limit:] if limit else out


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)
