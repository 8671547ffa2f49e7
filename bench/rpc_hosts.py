"""Benchmark: a model split over `ggml-rpc-server` workers on other hosts, at each modelled link, vs served locally.

Makes three test hosts (network namespaces on a bridge, tests/netns/hosts.py): ``ggml-rpc-server`` workers on the
first two, llama-server on the third. For each link (a bare bridge, 1 Gbit with +0.2 ms round trip, 100 Mbit with
+1 ms) it serves the same model three ways on the third host, one after the other: locally, split over one worker
(``--rpc``, ``-ngl 99``) and split over two, and sends each the same prompts (temperature 0, fixed seed, same
length). It prints decode tokens/s (llama-server's own ``timings.predicted_per_second``, median), the ratio to
local at the same link, the seconds until the server was ready (the weights cross the link at load), and whether
every answer was token for token the local one. Run as root from the repo root: ``python -m bench.rpc_hosts``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.netns.hosts import LAN_1G, LAN_100M, Host, Link, host_net, wait_tcp

from bench.rpc_split import PROMPTS, measure, wait_healthy
from fleetmind.llm import binaries
from fleetmind.llm.models import resolve

WORKER_PORT = 50052
SERVER_PORT = 8080
LINKS: list[Link | None] = [None, LAN_1G, LAN_100M]


@dataclass
class Result:
    decode: float
    ready_s: float
    identical: int
    answers: int


def serve(
    expert: Host, model: Path, threads: int, rpc: list[tuple[str, int]], logs: Path, tag: str
) -> tuple[str, float, subprocess.Popen[bytes]]:
    cmd = [str(binaries.llama_server()), "-m", str(model), "--host", expert.ip, "--port", str(SERVER_PORT)]
    cmd += ["-c", "2048", "-t", str(threads), "--no-webui"]
    if rpc:
        cmd += ["--rpc", ",".join(f"{ip}:{port}" for ip, port in rpc), "-ngl", "99"]
    log = logs / f"server-{tag}.log"
    t0 = time.perf_counter()
    proc = expert.start(*cmd, log=log)
    url = f"http://{expert.ip}:{SERVER_PORT}"
    wait_healthy(url, proc, log, timeout=300)
    return url, time.perf_counter() - t0, proc


def run_one(
    expert: Host,
    model: Path,
    args: argparse.Namespace,
    rpc: list[tuple[str, int]],
    logs: Path,
    tag: str,
    reference: dict[str, list[int]],
) -> Result:
    url, ready, proc = serve(expert, model, args.threads, rpc, logs, tag)
    try:
        measure(url, "Hello", 8)  # warm-up: the first touch of the weights is not what we measure
        decode, identical, answers = [], 0, 0
        for _ in range(args.rounds):
            for prompt in PROMPTS:
                dec, _, tokens = measure(url, prompt, args.n_predict)
                decode.append(dec)
                ref = reference.setdefault(prompt, tokens)
                identical += tokens == ref
                answers += 1
    finally:
        expert.stop(proc)
    return Result(statistics.median(decode), ready, identical, answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalogue name or GGUF path")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the prompts per configuration")
    parser.add_argument("--n-predict", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="threads of each worker and of llama-server")
    parser.add_argument("--cache", action="store_true", help="workers keep the weights in a local cache (-c)")
    args = parser.parse_args()
    if args.rounds < 1 or args.n_predict < 1 or args.threads < 1:
        parser.error("--rounds, --n-predict and --threads must be positive")

    model = resolve(args.model)
    with tempfile.TemporaryDirectory(prefix="rpc-hosts-") as tmp, host_net(3, Path(tmp) / "net") as net:
        logs = Path(tmp)
        w1, w2, expert = net.hosts
        for w in (w1, w2):
            cmd = [str(binaries.rpc_server()), "-H", w.ip, "-p", str(WORKER_PORT), "-t", str(args.threads)]
            if args.cache:
                cmd.append("-c")
            log = logs / f"worker-{w.name}.log"
            proc = w.start(*cmd, log=log)
            wait_tcp(w, w.ip, WORKER_PORT, proc=proc, log=log)
        print(
            f"model {model.name}, {args.n_predict} tokens per answer, {args.rounds}x{len(PROMPTS)} answers each, "
            f"threads {args.threads}, worker cache {'on' if args.cache else 'off'}"
        )
        reference: dict[str, list[int]] = {}
        rows = []
        for link in LINKS:
            net.shape(link)
            addrs = [w.reach(WORKER_PORT) for w in (w1, w2)]
            label = link.name if link else "bare bridge"
            delay = w1.delay_by if link else "-"
            for name, rpc in (("local", []), ("1 worker", addrs[:1]), ("2 workers", addrs)):
                tag = f"{label}-{name}".replace(" ", "_").replace(",", "")
                rows.append((label, delay, name, run_one(expert, model, args, rpc, logs, tag, reference)))
        print(f"{'link':22}{'delay by':>9}{'serving':>11}{'decode tok/s':>14}{'x local':>9}{'ready s':>9}{'same':>8}")
        local = {label: r.decode for label, _, name, r in rows if name == "local"}
        for label, delay, name, r in rows:
            print(
                f"{label:22}{delay:>9}{name:>11}{r.decode:>14.1f}{r.decode / local[label]:>9.3f}{r.ready_s:>9.1f}"
                f"{r.identical:>5}/{r.answers}"
            )


if __name__ == "__main__":
    main()
