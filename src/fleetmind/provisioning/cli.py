"""``fleetmind provision``: serve the provisioning API, make enrolment tokens, list nodes and jobs, retry.

``serve``, ``token`` and the listings work on this machine's files (``FLEETMIND_PROVISION_*`` settings);
``retry`` asks the running service (it owns the job runner) and needs an API key.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Annotated

import httpx
import typer

from fleetmind.config import get_settings
from fleetmind.provisioning.settings import ProvisionSettings, get_provision_settings

app = typer.Typer(
    help="Layer 2: the API new nodes call home to, and its Ansible jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Enrolment tokens new nodes call home with.", no_args_is_help=True)
app.add_typer(token_app, name="token")

# running playbooks get this long to notice a shutdown and end as interrupted
GRACEFUL_SHUTDOWN_S = 10


def _settings() -> ProvisionSettings:
    try:
        return get_provision_settings()
    except ValueError as exc:
        typer.echo(f"error: bad FLEETMIND_PROVISION_* setting: {exc}", err=True)
        raise typer.Exit(2) from None


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (FLEETMIND_PROVISION_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (FLEETMIND_PROVISION_PORT).")] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level (FLEETMIND_LOG_LEVEL).")] = None,
) -> None:
    """Serve the provisioning API until SIGINT/SIGTERM (running playbooks are then stopped as interrupted)."""
    import uvicorn

    from fleetmind.provisioning.app import create_app
    from fleetmind.provisioning.errors import ConfigurationError

    settings = _settings()
    settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
    level = (log_level or get_settings().log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        api = create_app(settings)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    config = uvicorn.Config(
        api,
        host=settings.host,
        port=settings.port,
        log_level=level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    uvicorn.Server(config).run()


@token_app.command("create")
def token_create(
    role: Annotated[str | None, typer.Option(help="Inventory group of nodes enrolled with it.")] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime: 3600, 15m, 24h, 7d, or never.")] = "1h",
    single_use: Annotated[
        bool, typer.Option("--single-use", help="Valid for one accepted call-home (the default).")
    ] = False,
    uses: Annotated[
        int | None, typer.Option(min=1, help="Valid for this many accepted call-homes (default 1).")
    ] = None,
    name: Annotated[str, typer.Option(help="A label to recognise it by.")] = "enrolment",
) -> None:
    """Make an enrolment token and print it once; only its SHA-256 hash is stored.

    Single-use and valid for an hour unless told otherwise: a token written into a PXE preseed can be read by
    anyone on that network, so it should open the door once, soon, and then be worthless."""
    from fleetmind.provisioning.store import JobStore
    from fleetmind.provisioning.tokens import new_token, parse_duration
    from fleetmind.security import hash_key

    settings = _settings()
    role = role or settings.default_role
    if role not in settings.roles:
        raise typer.BadParameter(f"must be one of {', '.join(settings.roles)}", param_hint="--role")
    try:
        seconds = parse_duration(ttl)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ttl") from None
    if not name.strip() or len(name) > 64 or not name.isprintable():
        raise typer.BadParameter("1-64 printable characters", param_hint="--name")
    max_uses = 1 if single_use or uses is None else uses
    secret = new_token()
    store = JobStore(settings.db_path)
    try:
        record = store.add_token(
            name=name.strip(),
            sha256=hash_key(secret),
            role=role,
            expires_at=time.time() + seconds if seconds else None,
            max_uses=max_uses,
        )
    finally:
        store.close()
    typer.echo(secret)
    limits = f"expires {_when(record.expires_at)}" if record.expires_at else "never expires"
    limits += f", {max_uses} use(s)" if max_uses else ", unlimited uses"
    typer.echo(f"({record.id}, role {role}, {limits}: shown once, only its hash is stored)", err=True)


@token_app.command("list")
def token_list() -> None:
    """List enrolment tokens (id, role, limits, state); the tokens themselves are never stored."""
    from fleetmind.provisioning.store import JobStore

    store = JobStore(_settings().db_path)
    try:
        tokens = store.tokens()
    finally:
        store.close()
    if not tokens:
        typer.echo("no enrolment tokens (make one with `fleetmind provision token create`)")
    for t in tokens:
        state = t.problem() or "valid"
        uses = f"{t.uses}/{t.max_uses}" if t.max_uses else f"{t.uses}/-"
        typer.echo(f"{t.id}  {t.name:<16} {t.role:<10} uses {uses:<7} expires {_when(t.expires_at)}  {state}")


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The id shown by `token list`.")]) -> None:
    """Revoke an enrolment token: call-homes with it are refused from now on."""
    from fleetmind.provisioning.errors import NotFoundError
    from fleetmind.provisioning.store import JobStore

    store = JobStore(_settings().db_path)
    try:
        record = store.revoke_token(token_id)
    except NotFoundError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(f"revoked {record.id} ({record.name})")


@app.command()
def nodes(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the nodes in the inventory with their group, address and latest job state."""
    from fleetmind.provisioning.inventory import Inventory
    from fleetmind.provisioning.store import JobStore

    settings = _settings()
    store = JobStore(settings.db_path)
    try:
        latest = store.latest_per_host()
    finally:
        store.close()
    hosts = Inventory(settings.inventory_path, roles=settings.roles).hosts()
    rows = [
        {
            "hostname": name,
            "group": entry.group,
            "ip": entry.ip,
            "mac": entry.mac,
            "last_state": latest[name].state if name in latest else None,
        }
        for name, entry in sorted(hosts.items())
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"no nodes in {settings.inventory_path}")
    for r in rows:
        typer.echo(f"{r['hostname']:<32} {r['group']:<10} {r['ip'] or '-':<16} {r['last_state'] or '-'}")


@app.command()
def jobs(
    node: Annotated[str | None, typer.Option(help="Only this node's jobs.")] = None,
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Newest first, at most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with output tails).")] = False,
) -> None:
    """List provisioning jobs, newest first, with their state and error."""
    from fleetmind.provisioning.store import JobStore

    store = JobStore(_settings().db_path)
    try:
        found = store.jobs(hostname=node.lower() if node else None, state=state, limit=limit)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([j.model_dump() for j in found], indent=2))
        return
    if not found:
        typer.echo("no jobs")
    for j in found:
        error = f"  {j.error}" if j.error else ""
        typer.echo(f"{j.id}  {_when(j.created_at)}  {j.hostname:<24} {j.trigger:<9} {j.state:<11}{error}")


@app.command()
def retry(
    node: Annotated[str, typer.Argument(help="The node's host name.")],
    url: Annotated[str | None, typer.Option(help="Service URL (default: from FLEETMIND_PROVISION_HOST/PORT).")] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="FLEETMIND_API_KEY", help="API key (`fleetmind keys create`).")
    ] = None,
) -> None:
    """Ask the running service to run the playbook again for NODE."""
    settings = _settings()
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    if not api_key:
        typer.echo("error: an API key is needed: --api-key or FLEETMIND_API_KEY", err=True)
        raise typer.Exit(2)
    try:
        r = httpx.post(
            f"{base}/api/provisioning/retry/{node}",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach the provisioning API at {base}: {exc}", err=True)
        raise typer.Exit(1) from None
    if r.status_code != 202:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:500]
        typer.echo(f"error: {r.status_code}: {message}", err=True)
        raise typer.Exit(1)
    body = r.json()
    typer.echo(f"queued {body['job_id']} for {body['hostname']}")
