"""The agent's settings come from FLEETMIND_AGENT_* variables; a bad expert list stops the process early."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETMIND_AGENT_EXPERTS", "general=http://127.0.0.1:9")
    monkeypatch.setenv("FLEETMIND_AGENT_REQUEST_TIMEOUT_S", "12.5")
    monkeypatch.setenv("FLEETMIND_AGENT_DEFAULT_EXPERT", "coder")
    settings = AgentSettings()
    assert (settings.experts, settings.request_timeout_s, settings.default_expert) == (
        "general=http://127.0.0.1:9",
        12.5,
        "coder",
    )
    assert AgentRuntime(settings=settings).directory.mode == "env"


def test_a_malformed_expert_list_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="expected name=http://host:port"):
        AgentRuntime(settings=AgentSettings(experts="general"))


def test_the_process_refuses_a_malformed_expert_list(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "FLEETMIND_STATE_DIR": str(tmp_path), "FLEETMIND_AGENT_EXPERTS": "oops"}
    cmd = [sys.executable, "-m", "fleetmind.apps.agent_process", "--port", "1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "bad agent configuration" in out.stderr and "oops" in out.stderr
