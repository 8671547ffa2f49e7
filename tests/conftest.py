"""Shared fixtures: free ports, real llama-server processes on the tiny model, process helpers, a test HTTP server."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from fleetmind.llm import binaries
from fleetmind.llm.tinymodel import write_tiny_llama
from tests.skip_gate import (  # noqa: F401  (the skip gate's hooks, installed for the whole suite)
    pytest_make_collect_report,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--llama-cpu-variant",
        metavar="VARIANT",
        help="run every llama-server of the suite with only libggml-cpu-VARIANT.so of the installed build (sse42: "
        "x86-64-v2, haswell: x86-64-v3, ...), to prove the suite on a CPU level below this machine's own",
    )


def pytest_configure(config: pytest.Config) -> None:
    variant = config.getoption("--llama-cpu-variant")
    if variant:
        folder = single_variant_build(binaries.bin_dir(), variant, Path(tempfile.mkdtemp(prefix="fleetmind-llama-")))
        # the processes the tests start (agent, gateway, `fleetmind up`) read it too
        os.environ["FLEETMIND_LLAMA_BIN_DIR"] = str(folder)
        binaries.bin_dir.cache_clear()
        config.add_cleanup(lambda: shutil.rmtree(folder.parent, ignore_errors=True))


def single_variant_build(source: Path, variant: str, dest: Path) -> Path:
    """``dest/bin``: a copy of the llama.cpp programs in ``source`` whose only CPU backend is ``variant``.

    A copy, not links: ggml looks for its CPU variants beside the running program's real path.
    """
    chosen = source / f"libggml-cpu-{variant}.so"
    if not chosen.is_file():
        found = sorted(p.name for p in source.glob("libggml-cpu-*.so"))
        raise pytest.UsageError(f"--llama-cpu-variant={variant}: no {chosen.name} in {source} (it has {found})")
    folder = dest / "bin"
    folder.mkdir()
    for path in source.iterdir():
        if path.is_file() and not path.name.startswith("libggml-cpu-") and path.name != "cpu_fit.json":
            shutil.copy2(path, folder / path.name, follow_symlinks=False)
    shutil.copy2(chosen, folder / chosen.name)
    return folder


@contextlib.contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server on a free loopback port answering with ``handler``; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http-server", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200, failing early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s (last: {last})")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)


def start_llama_server(model: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [str(binaries.llama_server()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["-c", "2048", "-t", "1", "--no-webui", *extra]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60, proc)
    except Exception:
        stop_process(proc)
        raise RuntimeError(f"llama-server did not start: {log.read_text(errors='replace')[-2000:]}") from None
    return proc


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def llama_server_url(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama-server on the tiny random model, shared by the session."""
    port = free_port()
    proc = start_llama_server(tiny_model, port, tmp_path_factory.mktemp("llama") / "llama-server.log")
    yield f"http://127.0.0.1:{port}"
    stop_process(proc)


@pytest.fixture(scope="session")
def packaged_model() -> Path:
    from fleetmind.llm.models import DEFAULT_MODEL, resolve

    return resolve(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def packaged_llama_server_url(packaged_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama-server on the packaged SmolLM2 model, for tests where meaning matters."""
    port = free_port()
    proc = start_llama_server(packaged_model, port, tmp_path_factory.mktemp("llama") / "llama-server.log", "-t", "2")
    yield f"http://127.0.0.1:{port}"
    stop_process(proc)
