"""``fleetmind keys``: create, list and revoke API keys (only their SHA-256 hashes are stored, with the scope)."""

from __future__ import annotations

import datetime as dt

import typer

from fleetmind.config import get_settings
from fleetmind.security import SCOPES, KeyStore, UnknownKeyError
from fleetmind.security.keys import check_scope

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def store() -> KeyStore:
    return KeyStore(get_settings().keys_file)


@app.command()
def create(
    name: str = typer.Option("default", "--name", "-n", help="A label to recognise the key by."),
    scope: str = typer.Option(
        "chat",
        "--scope",
        "-s",
        help=f"What the key may do: {' < '.join(SCOPES)} (chat: the OpenAI API; operator: Mission Control too; "
        "admin: keys and everyone's state too).",
    ),
) -> None:
    """Make a new key and print it once; only its SHA-256 hash is kept."""
    try:
        checked = check_scope(scope)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from None
    try:
        key, record = store().create(name, scope=checked)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None
    typer.echo(key)
    typer.echo(
        f"({record.id}, {record.name!r}, scope {record.scope}: shown once, only its SHA-256 hash is stored)", err=True
    )


@app.command("list")
def list_() -> None:
    """List stored keys (id, name, scope, creation time, hash prefix); keys themselves are never stored."""
    records = store().records()
    if not records:
        typer.echo("no stored keys (create one with `fleetmind keys create`)")
    for r in records:
        created = dt.datetime.fromtimestamp(r.created, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        typer.echo(f"{r.id}  {r.name:<20} {r.scope:<8} {created}  sha256:{r.sha256[:12]}…")


@app.command()
def revoke(key_id: str = typer.Argument(..., help="The id shown by `fleetmind keys list`.")) -> None:
    """Revoke a key: requests with it are refused from the next request on."""
    try:
        record = store().revoke(key_id)
    except UnknownKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked {record.id} ({record.name})")
