"""Tool runs started from Mission Control: each runs in the background through the shared tool runner.

``POST /api/tools/{name}/run`` must answer at once, yet a tool of ``approval`` risk waits for a person (maybe
minutes), and that person is likely the one at the page. So a run is a task: :meth:`ToolRuns.start` returns a
:class:`ToolRun` right away, its status moves from ``running`` to the runner's outcome, and the start and the
end are published into the event hub (``tool_run_started`` / ``tool_run_finished``) so the page updates live.
The runner's own gates (argument checks, policy, approval, timeout, audit) apply unchanged. Only the latest
``keep`` runs are remembered. What a run reports is bounded: an output whose JSON passes ``OUTPUT_CHARS`` comes
back as that JSON cut short with a ``… (N chars)`` marker, errors are cut the same way, and text that is not
valid Unicode is replaced, so a listing of runs always encodes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import TYPE_CHECKING, Any

from fleetmind.events import EventHub, Level
from fleetmind.mission_control.errors import ApiError
from fleetmind.security.text import scrub_json, unencodable_path
from fleetmind.tools.approvals import acting_for
from fleetmind.tools.audit import preview, truncate

if TYPE_CHECKING:
    from fleetmind.tools.runner import ToolRunner

log = logging.getLogger(__name__)

OUTPUT_CHARS = 16 * 1024
ERROR_CHARS = 4000


@dataclass
class ToolRun:
    id: str
    tool: str
    arguments: dict[str, Any]
    requester: str
    started_at: float
    status: str = "running"
    output: Any = None
    error: str | None = None
    approval: dict[str, Any] | None = None
    call_id: str | None = None
    finished_at: float | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        # (the output once went through the event hub's json_safe, whose note for a payload over 16 KB has no
        # "output" key: every listing after one large output was a 500)
        out: dict[str, Any] = {
            "id": self.id,
            "tool": self.tool,
            "arguments": preview(self.arguments, OUTPUT_CHARS),
            "requester": self.requester,
            "started_at": self.started_at,
            "status": self.status,
            "output": preview(self.output, OUTPUT_CHARS) if self.output is not None else None,
            "error": truncate(self.error, ERROR_CHARS) if self.error is not None else None,
            "approval": self.approval,
            "call_id": self.call_id,
            "finished_at": self.finished_at,
        }
        return dict(scrub_json(out))


def _plain(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return {"value": str(value)}


class ToolRuns:
    """Background tool runs of Mission Control, newest last, at most ``keep`` remembered."""

    def __init__(self, runner: ToolRunner, hub: EventHub, *, keep: int = 100) -> None:
        self.runner = runner
        self.hub = hub
        self.keep = keep
        self._runs: OrderedDict[str, ToolRun] = OrderedDict()

    def start(
        self, name: str, arguments: dict[str, Any], *, requester: str, requester_key: str | None = None
    ) -> ToolRun:
        """Start a run for the key ``requester_key`` (who may then not approve it themselves); ApiError 400 (nothing
        runs, nothing is published) for text that is not valid Unicode."""
        if (where := unencodable_path(arguments, "arguments")) is not None:
            raise ApiError(400, f"{where} holds text that is not valid Unicode", code="invalid_text", param=where)
        run = ToolRun(
            id="run-" + secrets.token_hex(6),
            tool=name,
            arguments=dict(arguments),
            requester=requester,
            started_at=round(time.time(), 3),
        )
        self._runs[run.id] = run
        # Forget the oldest finished runs beyond ``keep``; running ones stay until they end.
        finished = [r.id for r in self._runs.values() if r._task is not None and r._task.done()]
        for old in finished[: max(0, len(self._runs) - self.keep)]:
            del self._runs[old]
        self.hub.publish(
            "tool_run_started", f"{requester} runs {name}", run_id=run.id, tool=name, arguments=run.arguments
        )
        # the task copies the context as it is now: its approval request knows whose run it is
        token = acting_for.set(requester_key)
        try:
            run._task = asyncio.create_task(self._run(run), name=f"tool-run-{run.id}")
        finally:
            acting_for.reset(token)
        return run

    async def _run(self, run: ToolRun) -> None:
        try:
            outcome = await self.runner.run(run.tool, run.arguments, requester=run.requester)
        except asyncio.CancelledError:
            run.status, run.error = "cancelled", "Mission Control stopped"
            run.finished_at = round(time.time(), 3)
            raise
        except Exception as exc:  # the runner reports tool failures as outcomes; this is a bug or bad input
            log.exception("tool run %s failed", run.id, extra={"event": "tool_run_crashed", "run_id": run.id})
            run.status, run.error = "error", f"{type(exc).__name__}: {exc}"
        else:
            run.status = str(outcome.status)
            run.output = outcome.output
            run.error = outcome.error
            run.approval = _plain(outcome.approval)
            run.call_id = outcome.call_id
        run.finished_at = round(time.time(), 3)
        level: Level = "info" if run.status == "ok" else "warning"
        self.hub.publish(
            "tool_run_finished",
            f"{run.tool} {run.status}" + (f": {run.error}" if run.error else ""),
            level=level,
            run_id=run.id,
            tool=run.tool,
            status=run.status,
            error=run.error,
        )

    def get(self, run_id: str) -> ToolRun | None:
        return self._runs.get(run_id)

    def recent(self, limit: int = 50) -> list[ToolRun]:
        """The latest runs, newest first."""
        return list(self._runs.values())[::-1][:limit]

    async def aclose(self) -> None:
        tasks = [r._task for r in self._runs.values() if r._task is not None and not r._task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
