"""``fleetmind tools``: list the agent's tools, show one's argument schema, run one through the same gates as the
agent, and read the audit log.

``fleetmind tools run NAME --args JSON`` goes through validation, the policy and the audit log like a call from
the model. A tool whose call needs approval runs only with ``--yes``, which records the person at this terminal as
the approver; without it the call is denied with a message saying so. State (workspace, memory, audit log) lives
in ``$FLEETMIND_STATE_DIR/tools``, shared with Mission Control.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Any

import typer

from fleetmind.config import get_settings
from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.audit import AuditLog
from fleetmind.tools.errors import ToolError
from fleetmind.tools.runner import ToolRunner, build_runner

app = typer.Typer(
    help="List, inspect and run the agent's tools (through the same approval gates and audit log).",
    invoke_without_command=True,
)


def tools_state_dir() -> Path:
    """Where the tools keep their workspace, memory and audit log: the same place Mission Control uses."""
    return get_settings().state_dir / "tools"


def _runner(broker: ApprovalBroker | None = None) -> ToolRunner:
    try:
        return build_runner(state_dir=tools_state_dir(), approvals=broker)
    except (ToolError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _list() -> None:
    specs = _runner().specs()
    width = max(len(s.name) for s in specs)
    for s in specs:
        typer.echo(f"{s.name:<{width}}  {s.risk:<9}  {s.summary}")


@app.callback()
def _default(ctx: typer.Context) -> None:
    """List, inspect and run the agent's tools; with no command, list them."""
    if ctx.invoked_subcommand is None:
        _list()


@app.command("list")
def list_() -> None:
    """Every tool: name, risk level, one-line description."""
    _list()


@app.command()
def show(name: str = typer.Argument(..., help="The tool's name.")) -> None:
    """A tool's description, risk, timeout and JSON schema of arguments."""
    runner = _runner()
    spec = next((s for s in runner.specs() if s.name == name), None)
    if spec is None:
        typer.echo(f"error: no tool named {name!r} (see `fleetmind tools list`)", err=True)
        raise typer.Exit(1)
    typer.echo(
        json.dumps(
            {
                "name": spec.name,
                "description": spec.description,
                "risk": spec.risk,
                "timeout_s": spec.timeout_s,
                "parameters": spec.parameters,
            },
            indent=2,
        )
    )


@app.command()
def run(
    name: str = typer.Argument(..., help="The tool's name."),
    args: str = typer.Option("{}", "--args", "-a", help="Arguments as a JSON object."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Approve a call that needs approval, as you."),
    as_: str = typer.Option("", "--as", help="Who is asking, for the audit log (default: cli:<user>)."),
) -> None:
    """Run one tool call through validation, policy, approval and the audit log; print its outcome as JSON."""
    user = getpass.getuser()
    broker_box: list[ApprovalBroker] = []

    def on_approval(kind: str, payload: dict[str, Any]) -> None:
        if kind != "approval_requested":
            return
        if yes:
            broker_box[0].decide(payload["id"], approve=True, by=f"{user} (terminal, --yes)")
        else:
            broker_box[0].decide(payload["id"], approve=False, by=f"{user} (terminal)", note="run without --yes")

    broker = ApprovalBroker(on_event=on_approval)
    broker_box.append(broker)
    runner = _runner(broker)
    outcome = asyncio.run(runner.run(name, args, requester=as_ or f"cli:{user}", reason="fleetmind tools run"))
    if outcome.status == "denied" and not yes:
        typer.echo(
            f"refused: {name} needs a person's approval for this call; run again with --yes to approve it as {user}",
            err=True,
        )
    typer.echo(json.dumps(outcome.to_dict(), indent=2, ensure_ascii=False, default=str))
    if not outcome.ok:
        raise typer.Exit(1)


@app.command()
def audit(limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many of the latest calls.")) -> None:
    """The latest tool calls from the audit log, one JSON line each."""
    log = AuditLog(tools_state_dir() / "audit" / "tools.jsonl")
    for record in log.read(limit):
        typer.echo(json.dumps(record, ensure_ascii=False))
