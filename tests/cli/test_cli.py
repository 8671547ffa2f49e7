"""The `fleetmind` command from the outside: help everywhere, keys, models, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, state: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "FLEETMIND_STATE_DIR": str(state), **env}
    return subprocess.run([sys.executable, "-m", "fleetmind", *args], capture_output=True, text=True, env=full_env)


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["up"],
        ["down"],
        ["status"],
        ["chat"],
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["approvals"],
        ["approvals", "code"],
        ["models"],
        ["models", "list"],
        ["models", "tiny"],
    ],
)
def test_every_command_has_help(cmd: list[str], tmp_path: Path) -> None:
    out = run(*cmd, "--help", state=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


def test_keys_lifecycle(tmp_path: Path) -> None:
    made = run("keys", "create", "--name", "ci", state=tmp_path)
    assert made.returncode == 0
    key = made.stdout.strip()
    assert key.startswith("fm-") and "shown once" in made.stderr
    listing = run("keys", "list", state=tmp_path).stdout
    assert "ci" in listing and key not in listing
    key_id = listing.split()[0]
    assert run("keys", "revoke", key_id, state=tmp_path).returncode == 0
    gone = run("keys", "revoke", key_id, state=tmp_path)
    assert gone.returncode == 1 and "no API key" in gone.stderr


def test_keys_have_a_scope_chat_by_default(tmp_path: Path) -> None:
    from fleetmind.security import KeyStore

    plain = run("keys", "create", "--name", "client", state=tmp_path)
    admin = run("keys", "create", "--name", "owner", "--scope", "admin", state=tmp_path)
    assert plain.returncode == 0 and "scope chat" in plain.stderr
    assert admin.returncode == 0 and "scope admin" in admin.stderr
    store = KeyStore(tmp_path / "keys.json")
    assert [(r.name, r.scope) for r in store.records()] == [("client", "chat"), ("owner", "admin")]
    listing = run("keys", "list", state=tmp_path).stdout
    assert "chat" in listing and "admin" in listing
    typo = run("keys", "create", "--scope", "root", state=tmp_path)
    assert typo.returncode == 2 and "scope" in typo.stderr and len(store.records()) == 2


def test_approvals_code_of_an_unknown_request_is_a_clear_error(tmp_path: Path) -> None:
    out = run("approvals", "code", "apr-000000000000", state=tmp_path)
    assert out.returncode == 1 and "no pending approval" in out.stderr
    odd = run("approvals", "code", "../../keys", state=tmp_path)  # never a path outside the codes folder
    assert odd.returncode == 1 and "no pending approval" in odd.stderr


def test_models_list_and_tiny(tmp_path: Path) -> None:
    listing = run("models", "list", state=tmp_path)
    assert "smollm2-135m-instruct" in listing.stdout and ".gguf" in listing.stdout
    out = run("models", "tiny", str(tmp_path / "t.gguf"), state=tmp_path)
    assert out.returncode == 0 and (tmp_path / "t.gguf").is_file()


def test_up_with_a_missing_model_fails_clearly(tmp_path: Path) -> None:
    out = run(
        "up",
        "--model",
        str(tmp_path / "nope.gguf"),
        "--nomad-port",
        "0",
        "--consul-port",
        "0",
        state=tmp_path,
    )
    assert out.returncode == 1
    assert "neither a file nor a catalogue name" in out.stderr


def test_status_when_nothing_runs(tmp_path: Path) -> None:
    out = run("status", state=tmp_path, NOMAD_ADDR="http://127.0.0.1:9", CONSUL_HTTP_ADDR="127.0.0.1:9")
    assert out.returncode == 1 and "not running" in out.stderr


def test_chat_without_a_key_or_server(tmp_path: Path) -> None:
    env = {"FLEETMIND_API_KEY": "", "OPENAI_API_KEY": ""}
    assert "no API key" in run("chat", "-m", "hi", state=tmp_path, **env).stderr
    out = run("chat", "-m", "hi", "--base-url", "http://127.0.0.1:9/v1", "--api-key", "k", state=tmp_path)
    assert out.returncode == 1 and "fleetmind up" in out.stderr
