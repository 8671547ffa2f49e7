"""The ``fleetmind`` command: start the stack, look at it, talk to it, manage keys and models.

Each command lives in its own module and registers itself on :data:`app`; ``fleetmind --help`` lists them.
"""

from __future__ import annotations

import typer

from fleetmind import __version__
from fleetmind.cli import approvals, chat, doctor, keys, models, power, stack, supervise
from fleetmind.cli import tools as tools_cli
from fleetmind.provisioning import cli as provision

app = typer.Typer(
    name="fleetmind",
    help="Turn a pile of old computers into one self-hosted AI agent.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stack.register(app)
chat.register(app)
doctor.register(app)
supervise.register(app)
app.add_typer(approvals.app, name="approvals")
app.add_typer(keys.app, name="keys")
app.add_typer(models.app, name="models")
app.add_typer(power.app, name="power")
app.add_typer(provision.app, name="provision")
app.add_typer(tools_cli.app, name="tools")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fleetmind {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Turn a pile of old computers into one self-hosted AI agent."""


def main() -> None:
    app()
