"""Fixtures for the memory tests: the packaged MiniLM converted to GGUF and served by a real llama-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetmind.llm.embeddings import EmbeddingServer
from fleetmind.llm.gguf_convert import ensure_gguf


@pytest.fixture(scope="session")
def minilm_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("minilm")
    ensure_gguf(models)
    return models


@pytest.fixture(scope="session")
def embeddings_url(minilm_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``llama-server --embedding --pooling mean`` on the converted all-MiniLM-L6-v2."""
    server = EmbeddingServer(minilm_models_dir, log=tmp_path_factory.mktemp("emb") / "llama-server.log")
    server.start()
    yield server.url
    server.stop()


def kill_9_while_running(script: str, directory: Path, *, for_s: float = 0.3) -> None:
    """Run ``script`` (Python, given ``directory`` as its argument) until it prints "ready", let it go on for
    ``for_s`` seconds, then SIGKILL it: a crash in the middle of whatever it keeps writing."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(directory)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(for_s)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
