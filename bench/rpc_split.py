"""Benchmark: a model split over two ``ggml-rpc-server`` workers on loopback vs the same model served locally.

Starts two real workers (``--workers``), one llama-server with ``--rpc`` over them (``-ngl 99``, or ``--ngl``) and
one plain llama-server on the same model, then sends the same prompts alternately to both (temperature 0, fixed
seed, same length) and prints decode tokens/s (llama-server's own ``timings.predicted_per_second``) and end-to-end
tokens/s for each, with the ratio split / local (goal >= 0.9) and whether the answers were identical. Run from the
repo root: ``python -m bench.rpc_split`` (packaged SmolLM2 unless ``--model`` says otherwise).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from fleetmind.llm import binaries
from fleetmind.llm.models import resolve

PROMPTS = [
    "The capital of France is",
    "Write one sentence about the sea:",
    "A short list of fruits:",
    "def fibonacci(n):",
    "Once upon a time",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], log: Path, stack: ExitStack) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    stack.callback(stop)
    return proc


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not healthy within {timeout}s")


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # This probe takes the worker's single client slot for a moment; it is closed before llama-server comes.
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"worker on {port} not listening")


def measure(url: str, prompt: str, n_predict: int) -> tuple[float, float, list[int]]:
    """One request: (decode tokens/s as the server timed it, end-to-end tokens/s, tokens)."""
    body = {"prompt": prompt, "n_predict": n_predict, "temperature": 0, "seed": 7, "cache_prompt": False}
    t0 = time.perf_counter()
    answer: dict[str, Any] = httpx.post(
        f"{url}/completion", json={**body, "return_tokens": True, "ignore_eos": True}, timeout=300
    ).json()
    wall = time.perf_counter() - t0
    tokens = list(answer["tokens"])
    return float(answer["timings"]["predicted_per_second"]), len(tokens) / wall, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalogue name or GGUF path")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the prompts")
    parser.add_argument("--n-predict", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="threads of each worker and each llama-server")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=2, help="ggml-rpc-server workers to split over")
    parser.add_argument(
        "--ngl",
        type=int,
        default=99,
        help="layers on the workers (-ngl): 99 puts the output layer there too (what the expert launcher does); the "
        "model's layer count (30 for SmolLM2) keeps the output layer on the expert, so no logits cross",
    )
    args = parser.parse_args()
    if args.ngl < 1:
        parser.error("--ngl must be positive")

    model = resolve(args.model)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="rpc-split-") as tmp:
        logs = Path(tmp)
        worker_ports = [free_port() for _ in range(args.workers)]
        for i, port in enumerate(worker_ports):
            cmd = [str(binaries.rpc_server()), "-H", "127.0.0.1", "-p", str(port), "-t", str(args.threads)]
            start(cmd, logs / f"worker{i}.log", stack)
        for port in worker_ports:
            wait_listening(port)
        common = ["-m", str(model), "--host", "127.0.0.1", "-c", "2048", "-t", str(args.threads), "--no-webui"]
        servers: dict[str, str] = {}
        rpc = ",".join(f"127.0.0.1:{p}" for p in worker_ports)
        for name, extra in (("split", ["--rpc", rpc, "-ngl", str(args.ngl)]), ("local", [])):
            port = free_port()
            log = logs / f"{name}.log"
            proc = start([str(binaries.llama_server()), *common, "--port", str(port), *extra], log, stack)
            servers[name] = f"http://127.0.0.1:{port}"
            wait_healthy(servers[name], proc, log)

        print(
            f"model {model.name}, {args.n_predict} tokens per answer, threads {args.threads}, workers {rpc}, "
            f"-ngl {args.ngl}"
        )
        for url in servers.values():  # warm-up: first-touch of the weights is not what we measure
            measure(url, "Hello", 8)
        decode: dict[str, list[float]] = {name: [] for name in servers}
        e2e: dict[str, list[float]] = {name: [] for name in servers}
        identical = 0
        for rnd in range(args.rounds):
            for i, prompt in enumerate(PROMPTS):
                # Alternate which side goes first so a drift in machine load hits both alike.
                order = list(servers) if (rnd + i) % 2 == 0 else list(reversed(servers))
                tokens: dict[str, list[int]] = {}
                for name in order:
                    dec, total, tokens[name] = measure(servers[name], prompt, args.n_predict)
                    decode[name].append(dec)
                    e2e[name].append(total)
                identical += tokens["split"] == tokens["local"]
        n = args.rounds * len(PROMPTS)
        print(f"{'':8}{'decode tok/s (median)':>24}{'end-to-end tok/s (median)':>28}")
        for name in servers:
            print(f"{name:8}{statistics.median(decode[name]):>24.1f}{statistics.median(e2e[name]):>28.1f}")
        ratio_decode = statistics.median(decode["split"]) / statistics.median(decode["local"])
        ratio_e2e = statistics.median(e2e["split"]) / statistics.median(e2e["local"])
        print(f"ratio split/local: decode {ratio_decode:.3f}, end-to-end {ratio_e2e:.3f} (goal >= 0.9)")
        print(f"identical answers (token for token): {identical}/{n}")


if __name__ == "__main__":
    main()
