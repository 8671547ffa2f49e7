"""TODO.md: one entry per failed provisioning run, appended under a file lock, for a person to review.

Each entry names the node, the job, when it failed, the error and the tail of the run's output, and ends with
the command that retries it. Output is untrusted text: control characters and terminal escapes are dropped and
it goes inside a code fence longer than any run of backticks in it, so nothing in a log can break the file's
Markdown or pose as another entry."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from filelock import FileLock

from fleetmind.provisioning.schemas import Job

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
TITLE = "# Provisioning failures to review\n\n"


def clean(text: str) -> str:
    """Text safe to show: no terminal escapes, no control characters, ``\\r\\n`` as ``\\n``."""
    return _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n").replace("\r", "\n")))


def _fence(body: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def _inline(text: str) -> str:
    # a code span opened by more backticks than any run inside it cannot be closed early
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    return f"{ticks} {text} {ticks}"


def format_entry(job: Job, *, playbook: Path) -> str:
    when = dt.datetime.fromtimestamp(job.finished_at or job.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    error = clean(job.error or "no error message").strip().replace("\n", " ")
    tail = clean("\n".join(job.output_tail)).strip("\n") or "(no output)"
    fence = _fence(tail)
    return (
        f"## {when} · {job.hostname} · {job.state} ({job.id})\n\n"
        f"- [ ] Review, fix, then run `fleetmind provision retry {job.hostname}`\n"
        f"- node: `{job.hostname}` ({job.ip}), role `{job.role}`, trigger {job.trigger}\n"
        f"- playbook: `{playbook}`, exit code: {job.rc if job.rc is not None else 'none'}\n"
        f"- error: {_inline(error)}\n\n"
        f"{fence}text\n{tail}\n{fence}\n\n"
    )


class TodoWriter:
    """Appends failure entries to ``path`` (made, with a title, on first use)."""

    def __init__(self, path: Path, *, playbook: Path, lock_timeout: float = 30.0) -> None:
        self.path = path
        self.playbook = playbook
        self._lock = FileLock(str(path) + ".lock", timeout=lock_timeout)

    def append(self, job: Job) -> None:
        entry = format_entry(job, playbook=self.playbook)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            new = not self.path.exists() or self.path.stat().st_size == 0
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write((TITLE if new else "") + entry)
                fh.flush()
                os.fsync(fh.fileno())
