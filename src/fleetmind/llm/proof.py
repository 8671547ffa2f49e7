"""Prove a llama.cpp build on this machine: load a model, generate tokens; set aside CPU variants that crash.

This file is deliberately standard-library only: the ``llama_cpp`` Ansible role copies it to a node (a link in the
role's ``files/``) and runs it there with the node's own Python before it installs a build, and
:mod:`fleetmind.llm.cpu_fit` uses it for ``make llama``. Run as a script it prints its result as JSON and exits 0 when
the build generated tokens::

    python3 proof.py BIN_DIR MODEL.gguf [TIMEOUT_S]

ggml's runtime dispatch loads the best ``libggml-cpu-<variant>.so`` by ``cpuid`` alone; when the server dies by
SIGILL after loading one, that variant is moved to ``BIN_DIR/variants-set-aside/`` and the next try loads the next
best. A build without variants (a native one) gets one try.

Runtime dispatch picks the variant with the most features, which is not always the fastest: on an AMD Zen 4 the
AVX-512 variants can decode slower than the AVX2 one. So once a variant has generated, the best ``MEASURE`` variants
that run are timed on the same model (``MEASURE_TOKENS`` tokens, ``ROUNDS`` rounds, each variant's best round), and
those that score higher than the fastest but are slower by more than ``MARGIN`` are set aside too: dispatch then loads
the fastest.

A proof with ``measure=False`` only proves (what the supervisor's SIGILL heal runs on a live build): it keeps what an
earlier proof set aside, sets aside only the variants that die by SIGILL, and times nothing, so the speed choice made
at install stands whatever the light model's timings would say today.

Proofs of one build folder take turns: each holds an exclusive ``flock`` on ``BIN_DIR/.proof.lock`` while it moves
files (:func:`lock`). Every move is one ``rename`` inside the folder, so a ``llama-server`` that starts meanwhile sees
each variant either where it was or where it went, never a half-written copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

SET_ASIDE = "variants-set-aside"
MEASURING = "variants-being-measured"  # higher variants wait here while a lower one is timed
MEASURE = 3  # how many of the best variants that run are timed
MEASURE_TOKENS = 128
ROUNDS = 2
MARGIN = 1.08  # a lower variant must be this much faster to win (single runs differ by about 5% here)
LOCK = ".proof.lock"
LOCK_WAIT_S = 900.0  # a full proof with a big model takes minutes; a waiting one gives up after this
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
    set_aside: dict[str, str] = field(default_factory=dict)  # variant -> why: "SIGILL", or "slower: 115 < 126 tok/s"
    measured: dict[str, float] = field(default_factory=dict)  # variant -> decode tokens/s, best-scoring first
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


def try_generate(
    server: Path, model: Path, *, timeout_s: float = 120.0, threads: int = 0, n_predict: int = 8
) -> Attempt:
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
            generated = _generate(proc, port, timeout_s, n_predict)
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


def _generate(proc: subprocess.Popen[bytes], port: int, timeout_s: float, n_predict: int) -> tuple[int, float] | None:
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
    body = json.dumps({"prompt": "The capital of France is", "n_predict": n_predict, "temperature": 0}).encode()
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


class ProofBusyError(TimeoutError):
    """Another proof of the same build folder held its lock for longer than the wait allowed."""


@contextlib.contextmanager
def lock(bin_dir: Path, *, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the build folder's proof lock (``flock`` on ``BIN_DIR/.proof.lock``), waiting up to ``wait_s``; raises
    :class:`ProofBusyError`. Released when the holder exits, even if it is killed."""
    with open(bin_dir / LOCK, "a") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ProofBusyError(f"another proof of {bin_dir} is running (waited {wait_s:.0f} s)") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _move(src: Path, dest: Path) -> None:
    """One ``rename`` (same folder tree, same file system): a starting server never sees a partial file."""
    os.replace(src, dest)


def prove(
    bin_dir: Path,
    model: Path,
    *,
    timeout_s: float = 120.0,
    measure: bool = True,
    lock_held: bool = False,
    wait_s: float = LOCK_WAIT_S,
) -> ProofResult:
    """Try until the build generates; a variant that dies by SIGILL is set aside while another one remains.

    ``measure=True`` (an install) starts from every variant and then times the best ones (``_keep_the_fastest``);
    ``measure=False`` (a heal) keeps what is set aside and times nothing. The proof holds the folder's lock
    (:func:`lock`) unless the caller says it already does (``lock_held``)."""
    if not lock_held:
        with lock(bin_dir, wait_s=wait_s):
            return prove(bin_dir, model, timeout_s=timeout_s, measure=measure, lock_held=True)
    server = bin_dir / "llama-server"
    aside = bin_dir / SET_ASIDE
    # Variants hidden by a measurement that was cut short (the holder died) go back: hiding was never a choice.
    # An install's proof starts from every variant, including what an earlier proof set aside (a reinstall has
    # already put a fresh copy back); a heal's proof keeps the earlier choices.
    for folder in (bin_dir / MEASURING, *((aside,) if measure else ())):
        for lib in folder.glob("libggml-cpu-*.so") if folder.is_dir() else ():
            if (bin_dir / lib.name).exists():
                lib.unlink()
            else:
                _move(lib, bin_dir / lib.name)
    with contextlib.suppress(OSError):
        (bin_dir / MEASURING).rmdir()
    result = ProofResult(ok=False, variant=None)
    while True:
        attempt = try_generate(server, model, timeout_s=timeout_s)
        variant = variant_of(attempt.loaded) if attempt.loaded else None
        if attempt.exit_code is None:
            result.ok, result.variant = True, variant
            result.tokens, result.tokens_per_s = attempt.tokens, round(attempt.tokens_per_s, 1)
            if measure and variant and len(variants(bin_dir)) > 1:
                _keep_the_fastest(result, bin_dir, model, timeout_s=timeout_s)
            return result
        result.failures.append((variant or "the build", attempt.exit_code))
        result.last_stderr = attempt.stderr_tail
        sig = -attempt.exit_code if attempt.exit_code < 0 else 0
        if sig == signal.SIGILL and variant and variant in variants(bin_dir) and len(variants(bin_dir)) > 1:
            aside.mkdir(exist_ok=True)
            _move(bin_dir / f"libggml-cpu-{variant}.so", aside / f"libggml-cpu-{variant}.so")
            result.set_aside[variant] = signal.Signals(sig).name
            continue
        return result


def _keep_the_fastest(result: ProofResult, bin_dir: Path, model: Path, *, timeout_s: float) -> None:
    """Time the best ``MEASURE`` variants that run; set aside those that outscore the fastest but are slower."""
    server, measuring, aside = bin_dir / "llama-server", bin_dir / MEASURING, bin_dir / SET_ASIDE
    measuring.mkdir(exist_ok=True)
    try:
        for _ in range(ROUNDS):  # each variant's best round counts: another program's load only ever slows a round
            for _ in range(MEASURE):
                attempt = try_generate(server, model, timeout_s=timeout_s, n_predict=MEASURE_TOKENS)
                if attempt.exit_code is not None or not attempt.loaded or attempt.tokens_per_s <= 0:
                    break  # a lower variant that cannot generate is simply not a candidate
                variant = variant_of(attempt.loaded)
                result.measured[variant] = round(max(attempt.tokens_per_s, result.measured.get(variant, 0.0)), 1)
                if len(variants(bin_dir)) < 2:
                    break
                _move(bin_dir / f"libggml-cpu-{variant}.so", measuring / f"libggml-cpu-{variant}.so")
            for lib in measuring.glob("libggml-cpu-*.so"):
                _move(lib, bin_dir / lib.name)
    finally:
        for lib in measuring.glob("libggml-cpu-*.so"):
            _move(lib, bin_dir / lib.name)
        measuring.rmdir()
    if not result.measured:
        return
    order = list(result.measured)  # best-scoring first, as dispatch tried them
    best = max(order, key=lambda v: result.measured[v])
    if result.measured[best] < result.measured[order[0]] * MARGIN:
        return
    aside.mkdir(exist_ok=True)
    for variant in order[: order.index(best)]:
        _move(bin_dir / f"libggml-cpu-{variant}.so", aside / f"libggml-cpu-{variant}.so")
        result.set_aside[variant] = (
            f"slower here: {result.measured[variant]:.0f} < {result.measured[best]:.0f} tokens/s"
        )
    result.variant, result.tokens_per_s = best, result.measured[best]


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
