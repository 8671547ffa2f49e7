"""``fleetmind approvals code ID``: the second factor for approving one's own request in Mission Control.

Nobody approves a request their own key made (:mod:`fleetmind.tools.approvals`). A person who is alone with the
stack proves they are at the machine instead: each waiting request's one-time code lies in a 0600 file under the
state dir, which only the stack's user can read; this prints it, to be typed into the page's prompt.
"""

from __future__ import annotations

import typer

from fleetmind.config import get_settings
from fleetmind.tools.approvals import codes_dir_in, read_code
from fleetmind.tools.errors import ApprovalNotFoundError

app = typer.Typer(help="The one-time codes that let a person approve their own request.", no_args_is_help=True)


@app.command()
def code(approval_id: str = typer.Argument(..., help="The approval's id (apr-…), as the page shows it.")) -> None:
    """Print the one-time code of a waiting approval (read from the state dir; needs this machine's user)."""
    try:
        typer.echo(read_code(codes_dir_in(get_settings().state_dir), approval_id))
    except ApprovalNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except PermissionError as exc:
        typer.echo(f"error: cannot read the code ({exc}): run this as the user that runs the stack", err=True)
        raise typer.Exit(1) from None
