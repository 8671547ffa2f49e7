"""``fleetmind supervise log`` prints the audit; ``fleetmind evolve`` runs over the saved cases against a real
llama-server (the packaged model) and prints per-case results."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetmind.cli import app
from fleetmind.supervisor.audit import Audit
from fleetmind.supervisor.cases import save_case
from fleetmind.supervisor.evolve import variant_from_program

runner = CliRunner()


def test_supervise_log_prints_the_audit(tmp_path: Path) -> None:
    audit = Audit(tmp_path)
    audit.write(
        {
            "job": "a",
            "fault": {"kind": "oom"},
            "action": "increase_memory",
            "decided_by": "rule",
            "rule": "oom",
            "outcome": "healed",
            "time_to_heal_s": 3.2,
            "attempt": 1,
            "reason": "OOM",
        }
    )
    audit.write(
        {
            "job": "b",
            "fault": {"kind": "crash_loop"},
            "action": "error",
            "decided_by": "llm",
            "outcome": "escalated",
            "reason": "unknown",
        }
    )
    result = runner.invoke(app, ["supervise", "log", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "a  oom  → increase_memory (rule/oom)  healed in 3.2s  attempt 1" in lines[0]
    assert "b  crash_loop  → error (llm)  escalated" in lines[1]
    only_b = runner.invoke(app, ["supervise", "log", "--state-dir", str(tmp_path), "--job", "b", "--json"])
    assert only_b.output.count("\n") == 1 and '"job": "b"' in only_b.output
    empty = runner.invoke(app, ["supervise", "log", "--state-dir", str(tmp_path / "none")])
    assert "no supervisor audit entries" in empty.output


def test_evolve_without_cases_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evolve", "--state-dir", str(tmp_path), "--llm-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "no saved cases" in result.output


def test_a_program_file_is_read_without_running_it() -> None:
    code = 'import os\nSYSTEM = "s"\nINSTRUCTIONS = "i" + "j"\nos.system("false")\n'
    assert variant_from_program(code, "x") is None  # a computed string is not taken
    variant = variant_from_program('SYSTEM = "s"\nINSTRUCTIONS = "ij"\n', "x")
    assert variant is not None and (variant.system, variant.instructions) == ("s", "ij")


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "iterations"), [("builtin", "2"), ("openevolve", "1")])
@pytest.mark.timeout(600)
def test_evolve_runs_over_every_saved_case(
    tmp_path: Path, packaged_llama_server_url: str, engine: str, iterations: str
) -> None:
    crash = {"job": "web", "fault": {"kind": "crash_loop", "summary": "exited with code 3: connection refused"}}
    disk = {"job": "db", "fault": {"kind": "crash_loop", "summary": "No space left on device"}}
    save_case(tmp_path, crash)
    save_case(tmp_path, disk, expected="mark_failed_and_alert")
    base = ["evolve", "--state-dir", str(tmp_path), "--llm-url", packaged_llama_server_url]
    result = runner.invoke(app, [*base, "--iterations", iterations, "--engine", engine])
    assert result.exit_code == 0, result.output
    assert "2 saved cases" in result.output
    assert f"engine: {engine}" in result.output
    case_lines = [line for line in result.output.splitlines() if line.startswith(("web-crash_loop", "db-crash_loop"))]
    assert len(case_lines) == 2
    assert "kept variant" in result.output or "no variant kept" in result.output
    # nothing of the search is left attached to this process's logging (openevolve adds a file handler)
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in logging.root.manager.loggerDict)]
    leftover = [h for lg in loggers for h in lg.handlers if "fleetmind-evolve-" in str(getattr(h, "baseFilename", ""))]
    assert not leftover
