"""``fleetmind up``, ``down`` and ``status``: run the embedded stack on this machine and see what runs where.

Every option's default and help come from :class:`fleetmind.stack_settings.StackSettings` (an option not given
falls back to its ``FLEETMIND_STACK_*`` variable, then to the default). ``up`` records where it listens in
``<state dir>/stack.json`` (:mod:`fleetmind.stack_record`); ``status`` and ``down`` read it, so they find a stack
started on any ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from fleetmind.cluster.errors import ClusterError
from fleetmind.llm import LlmError
from fleetmind.llm.models import DEFAULT_MODEL
from fleetmind.security import KeyStore
from fleetmind.stack_record import Found, RecordError, StackRecord, find_stack, pid_alive, remove_record, write_record
from fleetmind.stack_settings import StackSettings, default

if TYPE_CHECKING:
    from fleetmind.cluster.client import ClusterClient

console = Console(stderr=True, log_path=False, soft_wrap=True)


def setting_option(name: str, *flags: str, shown: str | None = None) -> Any:
    """A typer option for the ``StackSettings`` field ``name``: its default, help and ``FLEETMIND_STACK_*`` variable.
    With ``shown``, the option's value is None unless given, and ``shown`` is the default its help names."""
    field = StackSettings.model_fields[name]
    env = f"{StackSettings.model_config.get('env_prefix', '')}{name}".upper()
    if shown is not None:
        return typer.Option(None, *flags, envvar=env, help=field.description, show_default=shown)
    return typer.Option(default(name), *flags, envvar=env, help=field.description)


def stack_settings(**given: object) -> StackSettings:
    """The settings from the options (None: not given), then the environment and the defaults; exit 2 if bad."""
    try:
        return StackSettings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        console.print(f"[red]error:[/] bad stack settings: {problems}")
        raise typer.Exit(2) from None


def recorded_stack(cfg: StackSettings) -> Found | None:
    """The stack recorded in the state dir (live or stale); an unreadable record is an error (exit 1)."""
    try:
        return find_stack(cfg.record_file)
    except RecordError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None


def running_pid() -> int | None:
    """The pid of the live ``up`` recorded in the state dir, or None."""
    found = recorded_stack(stack_settings())
    return None if found is None or found.stale else found.record.pid


def up(
    model: str | None = setting_option("model", "--model", "-m", shown=DEFAULT_MODEL),
    host: str = setting_option("host"),
    gateway_port: int = setting_option("gateway_port"),
    ui_port: int = setting_option("ui_port"),
    expert_port: int = setting_option("expert_port"),
    coding_port: int = setting_option("coding_port"),
    embeddings_port: int = setting_option("embeddings_port"),
    nomad_port: int = setting_option("nomad_port"),
    consul_port: int = setting_option("consul_port"),
    threads: int = setting_option("threads"),
    ctx_size: int = setting_option("ctx_size"),
) -> None:
    """Start the whole stack on this machine (llama-server, agent, gateway, Mission Control); Ctrl-C stops it."""
    from fleetmind import stack  # the embedded orchestrator pulls in the web stack: only `up` pays for it

    cfg = stack_settings(
        model=model,
        host=host,
        gateway_port=gateway_port,
        ui_port=ui_port,
        expert_port=expert_port,
        coding_port=coding_port,
        embeddings_port=embeddings_port,
        nomad_port=nomad_port,
        consul_port=consul_port,
        threads=threads,
        ctx_size=ctx_size,
    )
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    found = recorded_stack(cfg)
    if found is not None and not found.stale:
        console.print(
            f"[red]error:[/] fleetmind is already running (pid {found.record.pid}, "
            f"gateway {found.record.gateway_url}); stop it with `fleetmind down`"
        )
        raise typer.Exit(1)
    record = StackRecord.of(cfg)
    if found is not None:
        console.print(f"replacing a stale record {found.path} (its `up`, pid {found.record.pid}, is gone)")
    keys = KeyStore(cfg.keys_file)
    new_key = None
    if keys.is_empty():
        new_key, _ = keys.create("first-run", scope="admin")  # the person who starts the stack owns it
        # Shown at once, before anything can fail: a start that fails must not lose the only copy of the key.
        console.print(
            f"API key (made now, shown once; it is needed for the API and Mission Control): [bold]{new_key}[/]"
        )

    def on_cluster(nomad_addr: str, consul_addr: str) -> None:
        # the addresses the APIs really listen on (a port given as 0 is the system's choice)
        nonlocal record
        ports = {**record.ports, "nomad_port": _port_of(nomad_addr), "consul_port": _port_of(consul_addr)}
        record = record.model_copy(update={"nomad_addr": nomad_addr, "consul_addr": consul_addr, "ports": ports})
        write_record(cfg.record_file, record)

    def ready() -> None:
        write_record(cfg.record_file, record.model_copy(update={"ready": True}))
        console.print(f"[green]fleetmind is up[/] (state in {cfg.state_dir})")
        console.print(f"  OpenAI-compatible API  {cfg.gateway_url}")
        console.print(f"  Mission Control        {cfg.ui_url}")
        console.print(f"  orchestrator (Nomad)   {record.nomad_addr}   registry (Consul) {record.consul_addr}")
        if new_key:
            console.print(f"  API key (shown once)   [bold]{new_key}[/] (the same as above)")
        else:
            console.print("  API key                one you made before, or a new one: `fleetmind keys create`")
        console.print("Press Ctrl-C to stop.")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with console.status("starting fleetmind") as status:

            def progress(msg: str) -> None:
                status.update(msg)
                console.log(msg)

            def on_ready() -> None:
                status.stop()
                ready()

            await stack.run(cfg, stop, progress=progress, on_ready=on_ready, on_cluster=on_cluster)

    # Recorded before anything starts, so `status` and `down` find even a stack that is still coming up.
    write_record(cfg.record_file, record)
    try:
        asyncio.run(main())
    except (stack.StackError, LlmError, ClusterError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        remove_record(cfg.record_file, record.pid)
    console.print("fleetmind stopped")


def _port_of(addr: str) -> int:
    return int(addr.rstrip("/").rsplit(":", 1)[1])


def down(timeout: float = typer.Option(30.0, min=0.1, help="Seconds to wait for a clean stop.")) -> None:
    """Stop the stack `fleetmind up` recorded in the state dir (SIGTERM; it stops every task it runs) and wait."""
    cfg = stack_settings()
    found = recorded_stack(cfg)
    if found is None:
        typer.echo(f"fleetmind is not running (no record at {cfg.record_file})")
        return
    pid = found.record.pid
    if found.stale:
        remove_record(found.path, pid)
        typer.echo(f"fleetmind is not running: removed a stale record {found.path} (its `up`, pid {pid}, is gone)")
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            remove_record(found.path, pid)  # normally gone already: `up` removes it on a clean stop
            typer.echo(f"stopped (pid {pid}, gateway was {found.record.gateway_url})")
            return
        time.sleep(0.2)
    typer.echo(f"pid {pid} did not stop within {timeout:.0f}s; its tasks may still be stopping", err=True)
    raise typer.Exit(1)


def cluster_addresses(nomad_addr: str | None, consul_addr: str | None) -> tuple[str, str, str]:
    """The Nomad and Consul addresses to ask, and where they came from: the options (or NOMAD_ADDR and
    CONSUL_HTTP_ADDR), else the live stack's record, else the settings' defaults. A stale record is refused."""
    cfg = stack_settings()
    if nomad_addr and consul_addr:
        return nomad_addr, consul_addr, "given"
    found = recorded_stack(cfg)
    if found is not None and found.stale:
        typer.echo(
            f"fleetmind is not running: {found.path} is stale (its `up`, pid {found.record.pid}, is gone); "
            "`fleetmind down` removes it",
            err=True,
        )
        raise typer.Exit(1)
    if found is not None:
        rec = found.record
        return nomad_addr or rec.nomad_addr, consul_addr or rec.consul_addr, f"the stack of pid {rec.pid}"
    return nomad_addr or cfg.nomad_addr, consul_addr or cfg.consul_addr, "the default addresses"


def status(
    nomad_addr: str | None = typer.Option(
        None, envvar="NOMAD_ADDR", help="Nomad API URL (default: the running stack's, from its record)."
    ),
    consul_addr: str | None = typer.Option(
        None, envvar="CONSUL_HTTP_ADDR", help="Consul API host:port (default: the running stack's, from its record)."
    ),
) -> None:
    """What runs and where: each job's tasks, their state, restarts and health (the stack `up` recorded, or the
    cluster at NOMAD_ADDR/CONSUL_HTTP_ADDR)."""
    from fleetmind.cluster.client import ClusterClient

    nomad, consul, source = cluster_addresses(nomad_addr, consul_addr)
    try:
        client = ClusterClient(nomad_addr=nomad, consul_addr=consul)
    except ValueError as exc:
        typer.echo(f"bad address: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        jobs = client.jobs()
    except ClusterError as exc:
        typer.echo(
            f"fleetmind is not running: no orchestrator answers at {client.nomad_addr} ({source}; {exc})", err=True
        )
        raise typer.Exit(1) from None
    from fleetmind.cluster.causes import task_cause
    from fleetmind.exits import signal_name

    causes: list[str] = []
    table = Table(title=f"fleetmind at {client.nomad_addr}")
    for col in ("job", "task", "state", "restarts", "service", "address", "health", "last crash"):
        table.add_column(col)
    for job in sorted(jobs, key=lambda j: j["ID"]):
        detail = client.job(job["ID"])
        services = [s["Name"] for tg in detail.get("TaskGroups") or [] for s in tg.get("Services") or []]
        svc, addr, health = _service_cells(client, services)
        for alloc in client.job_allocations(job["ID"]):
            for task, st in sorted((alloc.get("TaskStates") or {}).items()):
                state = st.get("State", "?") + (" (failed)" if st.get("Failed") else "")
                cause = task_cause(st)
                short = (
                    "" if cause is None else signal_name(cause.signal) if cause.signal else f"exit {cause.exit_code}"
                )
                table.add_row(job["ID"], task, state, str(st.get("Restarts", 0)), svc, addr, health, short)
                if cause is not None:
                    causes.append(f"{job['ID']}/{task}: {cause.text}")
        causes += _queued(job)
    # Piped output has no terminal width; rich would squeeze the table to 80 columns and cut names.
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    # Causes are sentences: printed whole below the table rather than squeezed into a cell.
    for line in causes:
        typer.echo(line)


def _queued(job: dict[str, Any]) -> list[str]:
    """A line for each group of ``job`` with allocations that could not be placed (Nomad's job summary counts
    them as queued), with the scheduler's reason where it gives one (the embedded one: the job's
    StatusDescription, e.g. distinct_hosts on one node)."""
    summary = (job.get("JobSummary") or {}).get("Summary") or {}
    reason = str(job.get("StatusDescription") or "")
    return [
        f"{job['ID']}: {counts['Queued']} allocation(s) of group {group} not placed"
        + (f" ({reason})" if reason else "")
        for group, counts in sorted(summary.items())
        if int(counts.get("Queued") or 0) > 0
    ]


def _service_cells(client: ClusterClient, services: list[str]) -> tuple[str, str, str]:
    """Name, address and health of a job's first service (the embedded stack has one per job)."""
    if not services:
        return "-", "-", "-"
    name = services[0]
    try:
        healthy = client.healthy_services(name)
    except ClusterError:
        return name, "?", "unknown"
    if healthy:
        return name, f"{healthy[0].address}:{healthy[0].port}", "passing"
    return name, "-", "critical"


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
