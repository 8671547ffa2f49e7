"""``fleetmind provision``: help on every command, tokens, listings, clear errors (in-process, via typer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetmind.provisioning.cli import app
from fleetmind.provisioning.settings import get_provision_settings
from tests.provisioning.conftest import server_env

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    values = server_env(tmp_path, "quick.yaml")
    for name, value in values.items():
        if name.startswith("FLEETMIND_"):
            monkeypatch.setenv(name, value)
    get_provision_settings.cache_clear()
    yield values
    get_provision_settings.cache_clear()


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["serve"],
        ["token"],
        ["token", "create"],
        ["token", "list"],
        ["token", "revoke"],
        ["nodes"],
        ["jobs"],
        ["retry"],
    ],
)
def test_every_command_has_help(cmd: list[str]) -> None:
    out = runner.invoke(app, [*cmd, "--help"])
    assert out.exit_code == 0, out.output
    assert "Usage" in out.output


def test_tokens_and_listings(env: dict[str, str]) -> None:
    made = runner.invoke(app, ["token", "create", "--role", "control", "--uses", "3", "--ttl", "15m"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[0]
    assert secret.startswith("fmp-")
    listing = runner.invoke(app, ["token", "list"]).stdout
    assert "control" in listing and "uses 0/3" in listing and "valid" in listing and secret not in listing
    token_id = listing.split()[0]
    assert runner.invoke(app, ["token", "revoke", token_id]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["token", "list"]).stdout
    assert runner.invoke(app, ["token", "revoke", "tok_nope"]).exit_code == 1

    assert runner.invoke(app, ["token", "create", "--role", "nope"]).exit_code == 2
    assert runner.invoke(app, ["token", "create", "--ttl", "soon"]).exit_code == 2
    assert "no jobs" in runner.invoke(app, ["jobs"]).stdout
    assert "no nodes" in runner.invoke(app, ["nodes"]).stdout
    assert runner.invoke(app, ["retry", "node-a"]).exit_code == 2  # no API key


def test_serve_refuses_a_missing_playbook(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLEETMIND_PROVISION_PLAYBOOK_PATH", str(tmp_path / "absent.yaml"))
    get_provision_settings.cache_clear()
    out = runner.invoke(app, ["serve"])
    assert out.exit_code == 2
    assert "does not exist" in out.output
