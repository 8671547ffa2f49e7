"""``fleetmind up``, ``down`` and ``status``: run the embedded stack on this machine and see what runs where."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from fleetmind.cluster.errors import ClusterError
from fleetmind.config import get_settings
from fleetmind.llm import LlmError
from fleetmind.llm.models import DEFAULT_MODEL
from fleetmind.security import KeyStore

if TYPE_CHECKING:
    from fleetmind.cluster.client import ClusterClient

console = Console(stderr=True, log_path=False, soft_wrap=True)


def _pid_file() -> Path:
    return get_settings().state_dir / "up.pid"


def running_pid() -> int | None:
    try:
        pid = int(_pid_file().read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def up(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Catalogue name or path of a GGUF file."),
    host: str = typer.Option("127.0.0.1", help="Address every service binds to."),
    gateway_port: int = typer.Option(8080, help="Port of the OpenAI-compatible gateway (/v1)."),
    ui_port: int = typer.Option(8000, help="Port of Mission Control (the agent's web UI and API)."),
    expert_port: int = typer.Option(8090, help="Port of the llama-server expert 'general'."),
    coding_port: int = typer.Option(8092, help="Port of the llama-server expert 'coding'."),
    embeddings_port: int = typer.Option(8091, help="Port of the embedding server (long-term memory, routing)."),
    nomad_port: int = typer.Option(4646, help="Port of the embedded orchestrator's Nomad API."),
    consul_port: int = typer.Option(8500, help="Port of the embedded registry's Consul API."),
    threads: int = typer.Option(0, help="llama-server threads (0: up to 4, by CPU count)."),
) -> None:
    """Start the whole stack on this machine (llama-server, agent, gateway, Mission Control); Ctrl-C stops it."""
    from fleetmind import stack  # the embedded orchestrator pulls in the web stack: only `up` pays for it

    settings = get_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if (pid := running_pid()) is not None:
        console.print(f"[red]error:[/] fleetmind is already running (pid {pid}); stop it with `fleetmind down`")
        raise typer.Exit(1)
    cfg = stack.StackConfig(
        state_dir=settings.state_dir,
        model=model,
        host=host,
        gateway_port=gateway_port,
        ui_port=ui_port,
        expert_port=expert_port,
        coding_port=coding_port,
        embeddings_port=embeddings_port,
        nomad_port=nomad_port,
        consul_port=consul_port,
    )
    if threads > 0:
        cfg.threads = threads
    keys = KeyStore(settings.keys_file)
    new_key = None
    if keys.is_empty():
        new_key, _ = keys.create("first-run", scope="admin")  # the person who starts the stack owns it
        # Shown at once, before anything can fail: a start that fails must not lose the only copy of the key.
        console.print(
            f"API key (made now, shown once; it is needed for the API and Mission Control): [bold]{new_key}[/]"
        )

    def ready() -> None:
        console.print(f"[green]fleetmind is up[/] (state in {settings.state_dir})")
        console.print(f"  OpenAI-compatible API  {cfg.gateway_url}")
        console.print(f"  Mission Control        {cfg.ui_url}")
        console.print(f"  orchestrator (Nomad)   http://{host}:{nomad_port}   registry (Consul) {host}:{consul_port}")
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

            await stack.run(cfg, stop, progress=progress, on_ready=on_ready)

    _pid_file().write_text(str(os.getpid()))
    try:
        asyncio.run(main())
    except (stack.StackError, LlmError, ClusterError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            _pid_file().unlink()
    console.print("fleetmind stopped")


def down(timeout: float = typer.Option(30.0, help="Seconds to wait for a clean stop.")) -> None:
    """Stop a stack started by `fleetmind up` (SIGTERM; it stops every task it runs)."""
    pid = running_pid()
    if pid is None:
        typer.echo("fleetmind is not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid() is None:
            typer.echo(f"stopped (pid {pid})")
            return
        time.sleep(0.2)
    typer.echo(f"pid {pid} did not stop within {timeout:.0f}s", err=True)
    raise typer.Exit(1)


def status() -> None:
    """What runs and where: each job's tasks, their state, restarts and health (from NOMAD_ADDR/CONSUL_HTTP_ADDR)."""
    from fleetmind.cluster.client import ClusterClient

    client = ClusterClient()
    try:
        jobs = client.jobs()
    except ClusterError as exc:
        typer.echo(f"fleetmind is not running: no orchestrator answers at {client.nomad_addr} ({exc})", err=True)
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
    # Piped output has no terminal width; rich would squeeze the table to 80 columns and cut names.
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    # Causes are sentences: printed whole below the table rather than squeezed into a cell.
    for line in causes:
        typer.echo(line)


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
