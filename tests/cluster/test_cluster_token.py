"""The cluster token file: made once 0600, kept, refused when others can read it; found like HashiCorp's CLIs do."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetmind.cluster.errors import ClusterError
from fleetmind.cluster.token import client_token, ensure_token, token_file


def test_made_once_private_and_kept(tmp_path: Path) -> None:
    path = token_file(tmp_path / "state")
    token = ensure_token(path)
    assert len(token) >= 40 and path.stat().st_mode & 0o777 == 0o600
    assert ensure_token(path) == token
    path.chmod(0o644)
    with pytest.raises(ClusterError, match="chmod 600"):
        ensure_token(path)


def test_env_first_then_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOMAD_TOKEN", raising=False)
    assert client_token("NOMAD_TOKEN", tmp_path) is None
    token = ensure_token(token_file(tmp_path))
    assert client_token("NOMAD_TOKEN", tmp_path) == token
    monkeypatch.setenv("NOMAD_TOKEN", "from-env")
    assert client_token("NOMAD_TOKEN", tmp_path) == "from-env"
    monkeypatch.setenv("NOMAD_TOKEN", "")  # empty, as a job without the variable sets it: not a token
    assert client_token("NOMAD_TOKEN", tmp_path) == token
