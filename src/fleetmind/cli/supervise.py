"""``fleetmind supervise`` (run the self-healing loop), ``fleetmind supervise log`` (print its audit) and
``fleetmind evolve`` (search reflection variants against the saved adaptation cases).

The loop reads the cluster through ``NOMAD_ADDR``/``CONSUL_HTTP_ADDR`` and their tokens, like every fleetmind
client, and its own settings from ``FLEETMIND_SUPERVISOR_*`` (see :mod:`fleetmind.supervisor.settings`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="The self-healing supervisor: watch every job, heal it, audit it.",
    add_completion=False,
    pretty_exceptions_enable=False,
)

StateOpt = Annotated[Path | None, typer.Option("--state-dir", help="The stack's state dir (FLEETMIND_STATE_DIR).")]


def _settings(**overrides: Any) -> Any:
    from fleetmind.supervisor.settings import get_supervisor_settings

    try:
        return get_supervisor_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        typer.echo(f"error: bad FLEETMIND_SUPERVISOR_* setting: {exc}", err=True)
        raise typer.Exit(2) from None


@app.callback(invoke_without_command=True)
def supervise(
    ctx: typer.Context,
    state_dir: StateOpt = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between two looks at the cluster.")] = None,
    llm_url: Annotated[str | None, typer.Option(help="The reflection llama-server (default: an expert).")] = None,
) -> None:
    """Run the supervisor loop until Ctrl-C (or use a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    from fleetmind.supervisor.service import run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_forever(_settings(state_dir=state_dir, interval_s=interval, llm_url=llm_url))


def _line(entry: dict[str, Any]) -> str:
    import time

    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(entry.get("ts") or 0)))
    heal = entry.get("time_to_heal_s")
    fault = entry.get("fault") or {}
    return (
        f"{when}  {entry.get('job')}  {fault.get('kind')}  → {entry.get('action')} ({entry.get('decided_by')}"
        f"{'/' + entry['rule'] if entry.get('rule') else ''})  {entry.get('outcome')}"
        + (f" in {heal}s" if heal is not None else "")
        + (f"  attempt {entry['attempt']}" if entry.get("attempt") else "")
        + f"  — {str(entry.get('reason') or '')[:120]}"
    )


@app.command("log")
def log_command(
    state_dir: StateOpt = None,
    job: Annotated[str | None, typer.Option(help="Only this job.")] = None,
    last: Annotated[int, typer.Option(min=1, help="At most this many entries (the newest).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON lines.")] = False,
) -> None:
    """Print the supervisor's audit: fault, action, who decided, outcome."""
    from fleetmind.supervisor.audit import audit_path, read_audit

    settings = _settings(state_dir=state_dir)
    entries = [e for e in read_audit(settings.state_dir) if job is None or e.get("job") == job][-last:]
    if not entries:
        typer.echo(f"no supervisor audit entries in {audit_path(settings.state_dir)}")
        return
    for entry in entries:
        typer.echo(json.dumps(entry, sort_keys=True) if as_json else _line(entry))


def evolve(
    state_dir: StateOpt = None,
    llm_url: Annotated[
        str | None, typer.Option(help="The llama-server to evolve against (default: an expert).")
    ] = None,
    iterations: Annotated[int, typer.Option(min=1, max=200, help="Variants to try.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the search.")] = 0,
    engine: Annotated[
        str | None, typer.Option(help="openevolve (the default when installed) or builtin (fleetmind's own loop).")
    ] = None,
) -> None:
    """Search reflection variants over every saved case; keep one only if it passes all of them."""
    from fleetmind.supervisor import SupervisorError
    from fleetmind.supervisor.evolve import evolve as run_evolution

    if engine not in (None, "openevolve", "builtin"):
        typer.echo("error: --engine is openevolve or builtin", err=True)
        raise typer.Exit(2)
    settings = _settings(state_dir=state_dir, llm_url=llm_url)
    url = settings.llm_url or _expert_url()
    try:
        report = run_evolution(
            settings.state_dir, url, iterations=iterations, seed=seed, echo=typer.echo, engine=engine
        )
    except SupervisorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(report.summary())


def _expert_url() -> str:
    from fleetmind.cluster.client import ClusterClient, ClusterError

    try:
        with ClusterClient() as client:
            experts = client.services_by_tag("expert")
    except ClusterError as exc:
        typer.echo(f"error: no --llm-url and the registry did not answer: {exc}", err=True)
        raise typer.Exit(1) from None
    if not experts:
        typer.echo("error: no --llm-url and no healthy expert in the registry", err=True)
        raise typer.Exit(1)
    return experts[0].url


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="supervise")
    root.command("evolve")(evolve)
