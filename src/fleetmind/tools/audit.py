"""The audit log: one JSON line per tool call, appended and fsynced, so it survives crashes and restarts.

Each line records the call id, tool, who asked, the arguments, the risk and the policy's action, the approval (who
decided, how), the outcome status and error, a bounded preview of the output, and timings. The file is only ever
appended to; a line torn by a crash is closed with a newline before the next one and skipped when reading.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["AuditLog"]

PREVIEW_CHARS = 2000


def preview(value: Any, limit: int = PREVIEW_CHARS) -> Any:
    """``value`` itself when its JSON is short, else its JSON cut to ``limit`` characters."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return value if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


class AuditLog:
    """Append-only JSON-lines file (``STATE_DIR/audit/tools.jsonl``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
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
        """Whole records, oldest first (the last ``limit`` when given)."""
        if not self.path.exists():
            return []
        records = []
        for raw in self.path.read_bytes().splitlines():
            try:
                records.append(json.loads(raw))
            except ValueError:
                continue
        return records[-limit:] if limit else records


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)
