"""One source for the stack's settings: the CLI's defaults come from it, bad values fail early, the job specs are found
through the package, and the record `up` keeps is read by `status`, `down` and `doctor` (stale ones are not trusted)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fleetmind.stack_record import StackRecord, find_stack, pid_alive, read_record, write_record
from fleetmind.stack_settings import (
    JOBS_DIR_ENV,
    PORTS,
    JobsFolderMissing,
    StackSettings,
    default,
    packaged_jobs_dir,
)
from tests.cli.test_cli import run

REPO = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _record(state: Path, pid: int, **ports: int) -> StackRecord:
    cfg = StackSettings(state_dir=state, **ports)
    record = StackRecord.of(cfg, pid=pid)
    write_record(cfg.record_file, record)
    return record


def test_up_help_shows_every_default_and_variable_from_the_settings(tmp_path: Path) -> None:
    out = run("up", "--help", state=tmp_path, COLUMNS="200").stdout
    for name in (*PORTS, "host", "threads", "ctx_size"):
        flag = "--" + name.replace("_", "-")
        line = next((ln for ln in out.splitlines() if flag in ln), "")
        assert f"[default: {default(name)}]" in line, (flag, out)
        assert f"FLEETMIND_STACK_{name.upper()}" in line


def test_settings_come_from_the_environment_and_refuse_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETMIND_STACK_NOMAD_PORT", "5646")
    cfg = StackSettings()
    assert cfg.nomad_port == 5646 and cfg.nomad_addr == f"http://{cfg.host}:5646"
    assert StackSettings(nomad_port=5999).nomad_port == 5999  # an option given wins over the variable
    with pytest.raises(ValueError, match="ui_port and gateway_port are both"):
        StackSettings(ui_port=default("gateway_port"))
    with pytest.raises(ValueError, match="consul_port"):
        StackSettings(consul_port=70000)


def test_up_refuses_two_services_on_one_port_before_starting(tmp_path: Path) -> None:
    out = run("up", "--ui-port", "9100", "--gateway-port", "9100", state=tmp_path)
    assert out.returncode == 2
    assert "ui_port and gateway_port are both 9100" in out.stderr
    assert not (tmp_path / "stack.json").exists()


def test_the_job_specs_come_through_the_package_and_the_variable_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = sorted(p.name for p in (REPO / "jobs").glob("*.nomad.hcl"))
    assert names and sorted(p.name for p in packaged_jobs_dir().glob("*.nomad.hcl")) == names
    assert StackSettings().jobs_dir == packaged_jobs_dir()
    (tmp_path / "x.nomad.hcl").write_text('job "x" {}\n')
    monkeypatch.setenv(JOBS_DIR_ENV, str(tmp_path))
    assert StackSettings().jobs_dir == tmp_path
    monkeypatch.setenv(JOBS_DIR_ENV, str(tmp_path / "none"))
    with pytest.raises(JobsFolderMissing, match=f"{JOBS_DIR_ENV}=.*none"):
        _ = StackSettings().jobs_dir


def test_the_record_names_where_the_stack_listens_and_a_dead_pid_makes_it_stale(tmp_path: Path) -> None:
    assert find_stack(tmp_path / "stack.json") is None
    record = _record(tmp_path, os.getpid(), nomad_port=5646, consul_port=5647)
    assert read_record(tmp_path / "stack.json") == record
    assert record.nomad_addr.endswith(":5646") and record.ports["consul_port"] == 5647
    found = find_stack(tmp_path / "stack.json")
    # pytest runs as python -m pytest or .venv/bin/pytest: its command line need not say "fleetmind"
    assert found is not None and found.stale == (b"fleetmind" not in Path("/proc/self/cmdline").read_bytes())
    _record(tmp_path, _dead_pid())
    found = find_stack(tmp_path / "stack.json")
    assert found is not None and found.stale
    assert not pid_alive(found.record.pid)


def test_status_and_down_report_a_stale_record_and_do_not_trust_it(tmp_path: Path) -> None:
    pid = _dead_pid()
    _record(tmp_path, pid, nomad_port=5646)
    env = {k: "" for k in ("NOMAD_ADDR", "CONSUL_HTTP_ADDR")}
    status = run("status", state=tmp_path, **env)
    assert status.returncode == 1
    assert "stale" in status.stderr and f"pid {pid}" in status.stderr
    down = run("down", state=tmp_path, **env)
    assert down.returncode == 0 and "stale" in down.stdout
    assert not (tmp_path / "stack.json").exists()
    again = run("down", state=tmp_path, **env)
    assert again.returncode == 0 and "not running" in again.stdout


def test_a_broken_record_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"pid": "nope"}))
    out = run("down", state=tmp_path)
    assert out.returncode == 1 and str(tmp_path / "stack.json") in out.stderr


def test_status_without_a_record_asks_the_default_addresses(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    out = run("status", state=tmp_path, NOMAD_ADDR="", CONSUL_HTTP_ADDR="", FLEETMIND_STACK_NOMAD_PORT=str(port))
    assert out.returncode == 1
    assert re.search(rf"no orchestrator answers at http://127\.0\.0\.1:{port}", out.stderr), out.stderr


def test_doctor_counts_the_recorded_stack_ports_as_its_own(tmp_path: Path) -> None:
    from fleetmind.cli.doctor import FAIL, OK, check_ports

    with socket.socket() as held, socket.socket() as other:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        ours, theirs = held.getsockname()[1], other.getsockname()[1]
        # a live `up` (this process stands in for it) recorded `ours` as its gateway
        record = StackRecord.of(StackSettings(state_dir=tmp_path, gateway_port=ours), pid=os.getpid())
        from fleetmind.stack_record import Found

        live = Found(record=record, path=tmp_path / "stack.json", stale=False)
        assert check_ports("127.0.0.1", {"gateway": ours}, live).status == OK
        mixed = check_ports("127.0.0.1", {"gateway": ours, "coding": theirs}, live)
        assert mixed.status == FAIL and f"coding {theirs}" in mixed.detail and str(ours) not in mixed.detail
        stale = Found(record=record, path=tmp_path / "stack.json", stale=True)
        assert check_ports("127.0.0.1", {"gateway": ours}, stale).status == FAIL


def test_no_default_port_is_spelled_outside_the_settings() -> None:
    """Every default port lives in stack_settings.py; another module that needs one asks for it."""
    ports = "|".join(str(default(name)) for name in (*PORTS, "provisioning_port"))
    as_port = re.compile(rf"[\w\]]:({ports})\b|port.*\b({ports})\b", re.IGNORECASE)
    src = REPO / "src" / "fleetmind"
    found = [
        f"{path.relative_to(src)}:{n}: {line.strip()}"
        for path in sorted(src.rglob("*.py"))
        if path.name != "stack_settings.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if as_port.search(line)
    ]
    assert not found, "\n".join(found)
