"""The one gate every tool call goes through: parse, validate, apply the policy, wait for approval, run, audit.

``await runner.run(name, arguments, requester=...)`` never raises for anything the model could cause: an unknown
tool, arguments that are not JSON or break the schema (checked before the tool runs), a refused or denied call, a
timeout or a failing tool all come back as a :class:`ToolOutcome` with a ``status``, and
:meth:`ToolOutcome.to_model_message` is the text to feed back to the model (for ``invalid_arguments`` it lists
each validation error so the model can retry). Arguments holding text that is not valid Unicode (a lone
surrogate) are invalid. A call that is about to run is audited (``status: "started"``) before the tool starts;
every call, whatever its end, then has its final line in the audit log and one ``tool_call`` event.
:func:`build_runner` wires the registry (entry points + plugin dir), policy, approvals, context and audit log
from :class:`~fleetmind.tools.settings.ToolsSettings`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator

from fleetmind.security.text import unencodable_path
from fleetmind.tools.approvals import ApprovalBroker, ApprovalDecision
from fleetmind.tools.audit import AuditLog, preview
from fleetmind.tools.base import SandboxLimits, Tool, ToolCall, ToolContext, ToolSpec
from fleetmind.tools.errors import ToolArgumentsError, ToolError, ToolExecutionError, ToolRefusedError
from fleetmind.tools.policy import Policy
from fleetmind.tools.registry import ToolRegistry, discover
from fleetmind.tools.settings import ToolsSettings, get_tools_settings

__all__ = ["Status", "ToolOutcome", "ToolRunner", "build_runner", "context_from_settings"]

log = logging.getLogger(__name__)

Status = Literal["ok", "error", "invalid_arguments", "denied", "expired", "refused", "timeout", "unknown_tool"]
EventSink = Callable[[str, dict[str, Any]], None]
ARGUMENTS_PREVIEW = 8000  # a 10 MB file_write is recorded as its first 8000 characters, not whole


@dataclass
class ToolOutcome:
    """How one call ended. ``output`` is JSON-serialisable (None unless ``ok``)."""

    call_id: str
    tool: str
    status: Status
    output: Any
    error: str | None
    approval: ApprovalDecision | None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "approval": self.approval.to_dict() if self.approval else None,
            "duration_ms": round(self.duration_ms, 2),
        }

    def to_model_message(self) -> str:
        """What the agent feeds back to the model as the tool's answer."""
        if self.status == "ok":
            return self.output if isinstance(self.output, str) else json.dumps(self.output, ensure_ascii=False)
        by = f" by {self.approval.by}" if self.approval and self.approval.by else ""
        note = f" ({self.approval.note})" if self.approval and self.approval.note else ""
        messages = {
            "invalid_arguments": f"Invalid arguments for tool {self.tool}, it did not run:\n{self.error}\n"
            "Fix the arguments to match the tool's parameter schema and call it again.",
            "unknown_tool": f"There is no tool named {self.tool!r}. {self.error or ''}".strip(),
            "denied": f"A person denied the call to {self.tool}{by}{note}. Do not retry it; tell the user.",
            "expired": f"Nobody approved the call to {self.tool} in time; it did not run. Tell the user.",
            "refused": f"The call to {self.tool} was refused and did not run: {self.error}",
            "timeout": f"The tool {self.tool} ran past its time limit and was stopped: {self.error}",
            "error": f"The tool {self.tool} failed: {self.error}",
        }
        return messages[self.status]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def parse_arguments(arguments: dict[str, Any] | str | None) -> dict[str, Any]:
    """A dict, or a JSON object string (what an OpenAI-style model sends); raises ToolArgumentsError."""
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            raise ToolArgumentsError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise ToolArgumentsError(f"arguments must be a JSON object, got {type(arguments).__name__}")
    if (where := unencodable_path(arguments)) is not None:
        raise ToolArgumentsError(f"arguments hold text that is not valid Unicode (a lone surrogate?) at {where}")
    return arguments


def validate_arguments(tool: Tool, arguments: dict[str, Any]) -> None:
    """Check ``arguments`` against the tool's schema; every problem is listed in the error."""
    errors = sorted(Draft202012Validator(tool.parameters).iter_errors(arguments), key=lambda e: list(e.path))
    if errors:
        lines = [f"- at {'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors]
        raise ToolArgumentsError("\n".join(lines), lines)
    if tool.check_args is not None:
        tool.check_args(arguments)


class ToolRunner:
    """Runs tools by name through the policy, the approval broker and the audit log."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        context: ToolContext,
        audit: AuditLog,
        policy: Policy | None = None,
        approvals: ApprovalBroker | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.registry = registry
        self.context = context
        self.audit = audit
        self.policy = policy or Policy()
        self.approvals = approvals or ApprovalBroker()
        self.on_event = on_event

    def specs(self) -> list[ToolSpec]:
        """Every registered tool, by name."""
        return [t.spec() for t in self.registry]

    def openai_tools(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The ``tools=`` list for an OpenAI-style chat request; tools the policy always refuses are left out."""
        tools = [self.registry.get(n) for n in names] if names is not None else list(self.registry)
        return [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools
            if self.policy.action(t, t.risk) != "refuse"
        ]

    async def run(
        self, name: str, arguments: dict[str, Any] | str | None, *, requester: str, reason: str = ""
    ) -> ToolOutcome:
        """Run one call to the end; see the module docstring for what can come back."""
        call_id = f"call-{secrets.token_hex(6)}"
        started = time.time()
        t0 = time.perf_counter()
        record: dict[str, Any] = {"call_id": call_id, "tool": name, "requester": requester, "reason": reason}
        record["arguments"] = preview(arguments, ARGUMENTS_PREVIEW)
        approval: ApprovalDecision | None = None

        def done(status: Status, output: Any = None, error: str | None = None) -> ToolOutcome:
            outcome = ToolOutcome(call_id, name, status, output, error, approval, (time.perf_counter() - t0) * 1000)
            self._record(record, outcome, started)
            return outcome

        if name not in self.registry:
            return done("unknown_tool", error=f"known tools: {', '.join(self.registry.names())}")
        tool = self.registry.get(name)
        try:
            args = parse_arguments(arguments)
            record["arguments"] = preview(args, ARGUMENTS_PREVIEW)
            validate_arguments(tool, args)
        except ToolArgumentsError as exc:
            return done("invalid_arguments", error=str(exc))
        risk = tool.call_risk(args)
        action = self.policy.action(tool, risk)
        record.update(risk=risk, action=action)
        if action == "refuse":
            return done("refused", error=f"policy refuses {name} (risk {risk})")
        if action == "approve":
            try:
                approval = await self.approvals.request(
                    tool=name, arguments=args, risk=risk, requester=requester, reason=reason
                )
            except asyncio.CancelledError:
                record.update(status="cancelled")
                self._write(record, started, t0)
                raise
            if approval.outcome != "approved":
                status: Status = "expired" if approval.outcome in ("expired", "cancelled") else "denied"
                return done(status, error=f"approval {approval.outcome}")
        call = ToolCall(call_id, name, args, requester, self.context, self)
        # audited before it runs: a tool that takes the process down with it still left its line, and a call
        # that cannot be audited does not run
        if not self._started(record, started, approval):
            return done("error", error="the audit log could not be written, so the call did not run")
        try:
            output = await asyncio.wait_for(self._invoke(tool, call), timeout=tool.timeout_s)
            return done("ok", output=_jsonable(output))
        except TimeoutError:
            return done("timeout", error=f"no result within {tool.timeout_s:g}s")
        except asyncio.CancelledError:
            record.update(status="cancelled", approval=approval.to_dict() if approval else None)
            self._write(record, started, t0)
            raise
        except ToolArgumentsError as exc:
            return done("invalid_arguments", error=str(exc))
        except ToolRefusedError as exc:
            return done("refused", error=str(exc))
        except (ToolExecutionError, ToolError) as exc:
            return done("error", error=str(exc))
        except Exception as exc:  # a tool's bug is reported to the model, not raised into the agent
            log.exception("tool %s failed", name)
            return done("error", error=f"{type(exc).__name__}: {exc}")

    @staticmethod
    async def _invoke(tool: Tool, call: ToolCall) -> Any:
        if inspect.iscoroutinefunction(tool.func):
            return await tool.func(call)
        result = await asyncio.to_thread(tool.func, call)
        return await result if inspect.isawaitable(result) else result

    def _record(self, record: dict[str, Any], outcome: ToolOutcome, started: float) -> None:
        record.update(
            status=outcome.status,
            error=outcome.error,
            output=preview(outcome.output),
            approval=outcome.approval.to_dict() if outcome.approval else None,
        )
        self._write(record, started, None, outcome.duration_ms)

    def _started(self, record: dict[str, Any], started: float, approval: ApprovalDecision | None) -> bool:
        line = {**record, "status": "started", "started_at": started}
        if approval is not None:
            line["approval"] = approval.to_dict()
        try:
            self.audit.append(line)
        except OSError:
            log.exception("could not write the tools audit log %s", self.audit.path)
            return False
        return True

    def _write(self, record: dict[str, Any], started: float, t0: float | None, duration_ms: float = 0.0) -> None:
        if t0 is not None:
            duration_ms = (time.perf_counter() - t0) * 1000
        record.update(started_at=started, finished_at=time.time(), duration_ms=round(duration_ms, 2))
        try:
            self.audit.append(record)
        except OSError:
            log.exception("could not write the tools audit log %s", self.audit.path)
        if self.on_event is not None:
            try:
                self.on_event("tool_call", dict(record))
            except Exception:
                log.exception("tool_call event listener failed")


def context_from_settings(settings: ToolsSettings, state_dir: Path) -> ToolContext:
    """A :class:`ToolContext` for ``state_dir`` from settings (workspace default: ``state_dir/workspace``)."""
    workspace = settings.workspace or state_dir / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    return ToolContext(
        workspace=workspace.resolve(),
        state_dir=state_dir,
        llm_url=settings.llm_url,
        llm_model=settings.llm_model,
        experts=dict(settings.experts),
        embeddings_url=settings.embeddings_url,
        memory_dir=state_dir / "memory" / "tools",
        consul_addr=settings.consul_addr,
        nomad_addr=settings.nomad_addr,
        cluster_logs_dir=settings.cluster_logs_dir,
        http_allowlist=tuple(settings.http_allowlist),
        wol_broadcast=settings.wol_broadcast,
        wol_port=settings.wol_port,
        ansible_inventory=settings.ansible_inventory,
        sandbox=SandboxLimits(
            memory_mb=settings.sandbox_memory_mb,
            cpu_s=settings.sandbox_cpu_s,
            wall_s=settings.sandbox_wall_s,
            max_procs=settings.sandbox_max_procs,
            python=settings.sandbox_python,
        ),
    )


def build_runner(
    *,
    state_dir: Path,
    approvals: ApprovalBroker | None = None,
    policy: Policy | None = None,
    context: ToolContext | None = None,
    on_event: EventSink | None = None,
    settings: ToolsSettings | None = None,
    registry: ToolRegistry | None = None,
) -> ToolRunner:
    """A runner over every discovered tool, auditing to ``state_dir/audit/tools.jsonl``.

    Without ``approvals`` the runner makes its own broker (``runner.approvals``: hand it to Mission Control).
    """
    settings = settings or get_tools_settings()
    return ToolRunner(
        registry or discover(settings.plugin_dir),
        context=context or context_from_settings(settings, state_dir),
        audit=AuditLog(state_dir / "audit" / "tools.jsonl"),
        policy=policy or Policy.from_settings(settings),
        approvals=approvals or ApprovalBroker(timeout_s=settings.approval_timeout_s),
        on_event=on_event,
    )
