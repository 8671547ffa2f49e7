"""``fleetmind power``: wake a node by Wake-on-LAN, list the nodes and what waking each needs, run the power agent.

``wake`` and ``status`` read the Ansible inventory the provisioning API keeps (``FLEETMIND_POWER_INVENTORY``, or
``--inventory``); ``agent`` also talks to the orchestrator (``NOMAD_ADDR``, ``NOMAD_TOKEN``), the gateway's
metrics and, when ``FLEETMIND_POWER_EVENTS_URL``/``_KEY`` are set, Mission Control.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from fleetmind.power.errors import PowerError
from fleetmind.power.settings import PowerSettings, get_power_settings

app = typer.Typer(
    help="Power that follows demand: Wake-on-LAN, node power status, the power agent.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

InventoryOpt = Annotated[
    Path | None, typer.Option("--inventory", "-i", help="Ansible inventory (YAML); FLEETMIND_POWER_INVENTORY.")
]


def _settings(**overrides: Any) -> PowerSettings:
    try:
        return get_power_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        typer.echo(f"error: bad FLEETMIND_POWER_* setting: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command()
def wake(
    node: Annotated[str, typer.Argument(help="The node's inventory name.")],
    inventory: InventoryOpt = None,
    mode: Annotated[
        str | None, typer.Option(help="broadcast (this segment) or directed (the node's subnet broadcast).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Send to this IPv4 address instead.")] = None,
    port: Annotated[int | None, typer.Option(help="UDP port (default 9).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Send NODE its Wake-on-LAN magic packet (its MAC comes from the inventory)."""
    from fleetmind.power.nodes import find_node, read_inventory
    from fleetmind.power.wake import MODES
    from fleetmind.power.wake import wake as send

    if mode is not None and mode not in MODES:
        typer.echo(f"error: --mode must be one of {', '.join(MODES)}", err=True)
        raise typer.Exit(2)
    settings = _settings(inventory=inventory, wol_mode=mode, wol_port=port)
    try:
        target = find_node(read_inventory(settings.inventory), node)
        result = send(target, mode=settings.wol_mode, address=address, port=settings.wol_port)
    except PowerError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        typer.echo(f"sent a magic packet for {result.mac} ({result.node}) to {result.address}:{result.port}")


@app.command()
def status(inventory: InventoryOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the inventory's nodes: control or not, MAC, placement class, and where a wake would go."""
    from fleetmind.power.nodes import read_inventory
    from fleetmind.power.wake import target_address

    settings = _settings(inventory=inventory)
    try:
        nodes = read_inventory(settings.inventory)
    except PowerError as exc:
        raise _fail(exc) from None
    rows = []
    for name, node in sorted(nodes.items()):
        try:
            to = target_address(node, settings.wol_mode) if node.mac else None
            problem = None if node.mac else "no MAC: cannot be woken"
        except PowerError as exc:
            to, problem = None, str(exc)
        rows.append(
            {
                "node": name,
                "groups": list(node.groups),
                "control": node.control,
                "address": node.address,
                "mac": node.mac,
                "class": node.node_class,
                "wake_to": to,
                "problem": problem,
            }
        )
    if as_json:
        typer.echo(json.dumps({"inventory": str(settings.inventory), "nodes": rows}, indent=2))
        return
    typer.echo(f"{'NODE':20} {'ROLE':8} {'ADDRESS':16} {'MAC':18} {'CLASS':8} WAKE")
    for r in rows:
        role = "control" if r["control"] else "worker"
        wake_to = r["wake_to"] or f"- ({r['problem']})"
        typer.echo(
            f"{r['node']:20} {role:8} {r['address'] or '-':16} {r['mac'] or '-':18} {r['class'] or '-':8} {wake_to}"
        )


@app.command()
def agent(
    inventory: InventoryOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Take one decision round, then exit.")] = False,
    interval: Annotated[float | None, typer.Option(help="Seconds between rounds (FLEETMIND_POWER_INTERVAL_S).")] = None,
    health_host: Annotated[
        str | None, typer.Option(help="Address of GET /health (FLEETMIND_POWER_HEALTH_HOST, default 127.0.0.1).")
    ] = None,
    health_port: Annotated[
        int | None,
        typer.Option(help="Serve GET /health on this port, for a service check (FLEETMIND_POWER_HEALTH_PORT)."),
    ] = None,
) -> None:
    """Run the power agent: wake nodes when demand grows, drain and sleep idle ones (every decision audited)."""
    from fleetmind.cluster.client import ClusterClient
    from fleetmind.power.agent import PowerAgent
    from fleetmind.power.audit import Recorder
    from fleetmind.power.health import serve_health

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = _settings(inventory=inventory, interval_s=interval, health_host=health_host, health_port=health_port)
    key = settings.events_key.get_secret_value() if settings.events_key else None
    recorder = Recorder(settings.audit_log, events_url=settings.events_url, events_key=key)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    with ClusterClient() as client:
        power = PowerAgent(settings, client, recorder)
        health = None
        if settings.health_port is not None:
            try:
                health = serve_health(power, settings.interval_s, settings.health_host, settings.health_port)
            except OSError as exc:
                typer.echo(
                    f"error: cannot serve /health on {settings.health_host}:{settings.health_port}: {exc}", err=True
                )
                raise typer.Exit(1) from None
        try:
            power.run(once=once, stop=lambda: bool(stopping))
        except KeyboardInterrupt:
            pass
        finally:
            if health is not None:
                health.shutdown()
    recorder.record("stopped", "power agent stopped")
