"""`fleetmind up` on a machine whose llama.cpp build cannot run its experts: it fails fast, says why, loses no key.

The experts' llama-server is replaced by one that does what a build for another CPU does (a line of start-up log,
then SIGILL); the embedding server stays the real one, as on the machine where this was first seen.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetmind.llm import binaries
from tests.conftest import free_port

UNFIT_SERVER = """#!/bin/sh
case " $* " in *" --embedding "*) exec {real} "$@";; esac
echo "llama threadpool init, n_threads = 1" >&2
kill -ILL $$
"""


def test_up_fails_fast_with_the_cause_and_keeps_the_key(tiny_model: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    server = bin_dir / "llama-server"
    server.write_text(UNFIT_SERVER.format(real=binaries.llama_server()))
    server.chmod(0o755)
    ports = {name: free_port() for name in ("gateway", "ui", "expert", "coding", "embeddings", "nomad", "consul")}
    env = {
        **os.environ,
        "FLEETMIND_STATE_DIR": str(tmp_path / "state"),
        "FLEETMIND_LLAMA_BIN_DIR": str(bin_dir),
        "NOMAD_ADDR": f"http://127.0.0.1:{ports['nomad']}",
        "CONSUL_HTTP_ADDR": f"127.0.0.1:{ports['consul']}",
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "fleetmind", "up", "--model", str(tiny_model), "--threads", "1"]
    for name, port in ports.items():
        cmd += [f"--{name}-port", str(port)]
    try:
        # The ready deadline is 180 s; the timeout here only guards against a hang.
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`fleetmind up` did not give up on a crashing expert: {exc.stderr!r}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    flat = " ".join(out.split())  # rich wraps long lines
    assert "expert-general cannot start" in flat
    assert "killed by SIGILL (illegal instruction: this build uses CPU instructions this machine cannot run" in flat
    assert re.search(r"log: \S+llama-expert\S*\.stderr\.log", flat), flat
    assert "did not become healthy within" not in flat  # it failed on the cause, not at the deadline

    # The first-run key was shown before anything could fail, and it is a real key.
    key = re.search(r"API key \(made now, shown once.*?(fm-[A-Za-z0-9_-]+)", flat)
    assert key is not None, flat
    from fleetmind.security import KeyStore

    assert KeyStore(tmp_path / "state" / "keys.json").verify(key.group(1))
    # Nothing is left running.
    leftover = subprocess.run(["pgrep", "-f", f"--port {ports['embeddings']}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
