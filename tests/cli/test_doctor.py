"""`fleetmind doctor` from the outside: a checklist with a verdict, and the right failing line with its fix."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetmind.stack_settings import default
from tests.cli.test_cli import run


@pytest.fixture
def gateway_port_taken() -> Iterator[int]:
    """Something else listens on the stack's default gateway port (or already did: then it is taken either way)."""
    port: int = default("gateway_port")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            pass
        yield port


def _lines(out: str) -> dict[str, str]:
    """Check name -> its line (status mark included)."""
    return {line.split()[1]: line for line in out.splitlines() if line[:1] in "✓!✗" and len(line.split()) > 1}


def test_doctor_prints_every_check_and_a_verdict(tmp_path: Path) -> None:
    result = run("doctor", state=tmp_path)
    lines = _lines(result.stdout)
    assert list(lines) == ["CPU", "memory", "disk", "ports", "models", "llama.cpp", "services"], result.stdout
    assert lines["llama.cpp"].startswith("✓") and "generated" in lines["llama.cpp"]  # a real generation
    assert lines["models"].startswith("✓") and lines["services"].startswith("✓")
    assert "verdict:" in result.stdout.splitlines()[-1]


def test_doctor_fails_on_a_taken_port_with_its_fix(tmp_path: Path, gateway_port_taken: int) -> None:
    result = run("doctor", state=tmp_path)
    assert result.returncode == 1, result.stdout
    ports = _lines(result.stdout)["ports"]
    assert ports.startswith("✗") and f"gateway {gateway_port_taken}" in ports
    assert "fix: stop that program" in result.stdout
    assert "verdict: not ready (ports)" in result.stdout


def test_doctor_fails_on_a_missing_model_with_its_fix(tmp_path: Path) -> None:
    result = run("doctor", "--model", str(tmp_path / "gone.gguf"), state=tmp_path)
    assert result.returncode == 1
    lines = _lines(result.stdout)
    assert lines["models"].startswith("✗") and "gone.gguf" in lines["models"]
    assert "fix: run `make models`" in result.stdout
    assert "not ready" in result.stdout and "models" in result.stdout.splitlines()[-1]
