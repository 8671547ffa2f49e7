"""``fleetmind tools``: list, show, run through the gates (--yes for approval), audit; help everywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetmind.cli import app
from fleetmind.config import get_settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("FLEETMIND_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_list_and_show(cli: CliRunner) -> None:
    listed = cli.invoke(app, ["tools"])
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split()[1] for line in listed.output.splitlines()}
    assert len(rows) >= 25 and rows["shell"] == "approval" and rows["calculator"] == "safe"
    assert cli.invoke(app, ["tools", "list"]).output == listed.output
    shown = cli.invoke(app, ["tools", "show", "file_read"])
    assert json.loads(shown.output)["parameters"]["required"] == ["path"]
    assert cli.invoke(app, ["tools", "show", "nope"]).exit_code == 1


def test_run_safe_invalid_and_approval(cli: CliRunner, tmp_path: Path) -> None:
    ok = cli.invoke(app, ["tools", "run", "calculator", "--args", '{"expression": "6*7"}'])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["output"]["result"] == 42
    bad = cli.invoke(app, ["tools", "run", "calculator", "--args", '{"expr": 1}'])
    assert bad.exit_code == 1 and json.loads(bad.stdout)["status"] == "invalid_arguments"
    workspace = tmp_path / "state" / "tools" / "workspace"
    refused = cli.invoke(app, ["tools", "run", "shell", "--args", '{"command": "touch x"}'])
    assert refused.exit_code == 1 and "run again with --yes" in refused.stderr
    assert json.loads(refused.stdout)["status"] == "denied" and not (workspace / "x").exists()
    approved = cli.invoke(app, ["tools", "run", "shell", "--args", '{"command": "touch x"}', "--yes"])
    assert approved.exit_code == 0, approved.output
    assert "--yes" in json.loads(approved.stdout)["approval"]["by"] and (workspace / "x").exists()
    audit = cli.invoke(app, ["tools", "audit", "-n", "2"])
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [r["status"] for r in records] == ["denied", "ok"] and records[1]["tool"] == "shell"
    assert records[1]["requester"].startswith("cli:")


def test_help_everywhere(cli: CliRunner) -> None:
    for args in (
        ["tools", "--help"],
        ["tools", "run", "--help"],
        ["tools", "list", "--help"],
        ["tools", "show", "--help"],
        ["tools", "audit", "--help"],
    ):
        result = cli.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output, args
    assert "--yes" in cli.invoke(app, ["tools", "run", "--help"]).output
