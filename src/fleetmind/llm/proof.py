"""Prove a llama.cpp build on this machine: load a model, generate tokens; set aside CPU variants that crash.

This file is deliberately standard-library only: the ``llama_cpp`` Ansible role copies it to a node (a link in the
role's ``files/``) and runs it there with the node's own Python before it installs a build, and
:mod:`fleetmind.llm.cpu_fit` uses it for ``make llama``. Run as a script it prints its result as JSON and exits 0 when
the build generated tokens::

    python3 proof.py BIN_DIR MODEL.gguf [TIMEOUT_S]

ggml's runtime dispatch loads the best ``libggml-cpu-<variant>.so`` by ``cpuid`` alone; when the server dies by
SIGILL after loading one, that variant is moved to ``BIN_DIR/variants-set-aside/`` and the next try loads the next
best. A build without variants (a native one) gets one try.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

SET_ASIDE = "variants-set-aside"
_LOADED = re.compile(r"loaded CPU backend from (\S+)")


@dataclass
class Attempt:
    exit_code: int | None  # None: it generated; else the exit code, or -N if killed by signal N
    stderr_tail: str
    tokens: int = 0
    tokens_per_s: float = 0.0
    loaded: str | None = None  # the CPU variant library that ggml loaded, if it said


@dataclass
class ProofResult:
    ok: bool
    variant: str | None  # libggml-cpu-<variant>.so that generated, or None without runtime dispatch
    tokens: int = 0
    tokens_per_s: float = 0.0
    set_aside: dict[str, int] = field(default_factory=dict)  # variant -> the signal it died by
    failures: list[tuple[str, int]] = field(default_factory=list)  # (what was tried, exit code or -signal)
    last_stderr: str = ""


def variant_of(library: str) -> str:
    """``.../libggml-cpu-haswell.so`` → ``haswell``."""
    return Path(library).name.removeprefix("libggml-cpu-").removesuffix(".so")


def variants(bin_dir: Path) -> list[str]:
    return sorted(variant_of(p.name) for p in bin_dir.glob("libggml-cpu-*.so"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def try_generate(server: Path, model: Path, *, timeout_s: float = 120.0, threads: int = 0) -> Attempt:
    """Start llama-server on a loopback port, ask for a few tokens, stop it."""
    port = _free_port()
    threads = threads or max(1, min(4, os.cpu_count() or 1))
    # -lv 4: llama.cpp logs which CPU variant ggml loaded only at this verbosity.
    argv = [str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", "512", "-lv", "4"]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [*argv, "-t", str(threads)], stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
        try:
            generated = _generate(proc, port, timeout_s)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    loaded = _LOADED.findall(stderr)
    tail = "\n".join(stderr.strip().splitlines()[-5:])
    if generated is None:
        return Attempt(
            proc.returncode if proc.returncode is not None else 1, tail, loaded=loaded[-1] if loaded else None
        )
    tokens, per_s = generated
    return Attempt(None, tail, tokens, per_s, loaded[-1] if loaded else None)


def _generate(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> tuple[int, float] | None:
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            return None
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        time.sleep(0.1)
    body = json.dumps({"prompt": "The capital of France is", "n_predict": 8, "temperature": 0}).encode()
    req = urllib.request.Request(f"{base}/completion", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=max(5.0, deadline - time.monotonic())) as resp:
            data = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    tokens = int(data.get("tokens_predicted") or 0)
    if tokens < 1 or proc.poll() is not None:
        return None
    return tokens, float((data.get("timings") or {}).get("predicted_per_second") or 0.0)


def prove(bin_dir: Path, model: Path, *, timeout_s: float = 120.0) -> ProofResult:
    """Try until the build generates; a variant that dies by SIGILL is set aside while another one remains."""
    server = bin_dir / "llama-server"
    aside = bin_dir / SET_ASIDE
    # A reinstall puts every variant back: what an earlier proof set aside is proven again.
    if aside.is_dir():
        for lib in aside.glob("libggml-cpu-*.so"):
            if (bin_dir / lib.name).exists():
                lib.unlink()
    result = ProofResult(ok=False, variant=None)
    while True:
        attempt = try_generate(server, model, timeout_s=timeout_s)
        variant = variant_of(attempt.loaded) if attempt.loaded else None
        if attempt.exit_code is None:
            result.ok, result.variant = True, variant
            result.tokens, result.tokens_per_s = attempt.tokens, round(attempt.tokens_per_s, 1)
            return result
        result.failures.append((variant or "the build", attempt.exit_code))
        result.last_stderr = attempt.stderr_tail
        sig = -attempt.exit_code if attempt.exit_code < 0 else 0
        if sig == signal.SIGILL and variant and variant in variants(bin_dir) and len(variants(bin_dir)) > 1:
            aside.mkdir(exist_ok=True)
            shutil.move(str(bin_dir / f"libggml-cpu-{variant}.so"), str(aside / f"libggml-cpu-{variant}.so"))
            result.set_aside[variant] = sig
            continue
        return result


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, frozenset[str]]:
    """The CPU's model name and the feature flags the kernel reports."""
    model, flags = "unknown CPU", frozenset[str]()
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = frozenset(value.split())
    return model, flags


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: proof.py BIN_DIR MODEL.gguf [TIMEOUT_S]", file=sys.stderr)
        return 2
    result = prove(Path(argv[0]), Path(argv[1]), timeout_s=float(argv[2]) if len(argv) == 3 else 120.0)
    model, flags = cpu_flags()
    print(json.dumps({**asdict(result), "cpu": model, "flags": sorted(flags)}))
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
