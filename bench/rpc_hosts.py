"""Benchmark: a model split over `ggml-rpc-server` workers on other hosts, at each modelled link, vs served locally.

Makes three test hosts (network namespaces on a bridge, tests/netns/hosts.py): ``ggml-rpc-server`` workers on the
first two, llama-server on the third. For each link (a bare bridge, 1 Gbit with +0.2 ms round trip, 100 Mbit with
+1 ms) it serves the same model three ways on the third host, one after the other: locally, split over one worker
(``--rpc``, ``-ngl 99``) and split over two, and sends each the same prompts (temperature 0, fixed seed, same
length). It prints decode tokens/s (llama-server's own ``timings.predicted_per_second``, median), the ratio to
local at the same link, the seconds until the server was ready (the weights cross the link at load), and whether
every answer was token for token the local one. Run as root from the repo root: ``python -m bench.rpc_hosts``.

``--memory-limit MB`` shows instead when a split pays: each host's processes get a memory cgroup limited to MB
(cgroup v1 ``memory.limit_in_bytes`` or v2 ``memory.max``, swap off; :mod:`fleetmind.cluster.embedded.memlimit`),
and the model is loaded without mmap (``-lm none``), so its weights must be resident where they are used (with
mmap the kernel would page them in and out of a cache charged elsewhere instead of refusing). It serves the model
three ways on the expert host: locally without a limit (the reference answers), locally under the limit, and split
over the two workers with every host under the limit; it prints whether each served, why not (the OOM killer's count
in the cgroup, or the server's own error), each process's peak resident memory (``VmHWM``), decode tokens/s, and
whether the split answers were token for token the unlimited local ones (temperature 0).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.netns.hosts import LAN_1G, LAN_100M, Host, HostNet, Link, host_net, wait_tcp

from bench.rpc_split import PROMPTS, measure, wait_healthy
from fleetmind.cluster.embedded import memlimit
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


def start_in(host: Host, cmd: list[str], log: Path, cgroup: memlimit.MemoryCgroup | None) -> subprocess.Popen[bytes]:
    """``cmd`` on ``host``, inside ``cgroup`` from its first allocation on. ``ip netns exec`` mounts a sysfs of the
    namespace, without the cgroup folders, so the process cannot join by itself: a shell waits until this process
    has put it in (it keeps its pid through ``exec``), then becomes the program."""
    if cgroup is None:
        return host.start(*cmd, log=log)
    gate = f'while ! grep -q "/{cgroup.path.name}$" /proc/$$/cgroup; do sleep 0.02; done; exec "$@"'
    proc = host.start("/bin/sh", "-c", gate, "sh", *cmd, log=log)
    cgroup.procs.write_text(str(proc.pid))
    return proc


def serve(
    expert: Host,
    model: Path,
    threads: int,
    rpc: list[tuple[str, int]],
    logs: Path,
    tag: str,
    *,
    cgroup: memlimit.MemoryCgroup | None = None,
    extra: list[str] | None = None,
    workers: Sequence[subprocess.Popen[bytes]] = (),
    timeout: float = 300,
    ngl: int = 99,
) -> tuple[str, float, subprocess.Popen[bytes]]:
    """llama-server on ``expert`` (inside ``cgroup`` when given), split over ``rpc`` workers if any; waits until it
    is healthy. Raises RuntimeError when it exits first, or when one of ``workers`` does (llama-server can wait on a
    worker that is gone), TimeoutError after ``timeout``; either way the server is stopped."""
    cmd = [str(binaries.llama_server()), "-m", str(model), "--host", expert.ip, "--port", str(SERVER_PORT)]
    cmd += ["-c", "2048", "-t", str(threads), "--no-webui", *(extra or [])]
    if rpc:
        cmd += ["--rpc", ",".join(f"{ip}:{port}" for ip, port in rpc), "-ngl", str(ngl)]
    log = logs / f"server-{tag}.log"
    t0 = time.perf_counter()
    proc = start_in(expert, cmd, log, cgroup)
    url = f"http://{expert.ip}:{SERVER_PORT}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if any(w.poll() is not None for w in workers):
                raise RuntimeError("an RPC worker exited while the expert was loading")
            with contextlib.suppress(TimeoutError):
                wait_healthy(url, proc, log, timeout=1)
                return url, time.perf_counter() - t0, proc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not healthy within {timeout}s")
    except BaseException:
        expert.stop(proc)
        raise


def run_one(
    expert: Host,
    model: Path,
    args: argparse.Namespace,
    rpc: list[tuple[str, int]],
    logs: Path,
    tag: str,
    reference: dict[str, list[int]],
) -> Result:
    url, ready, proc = serve(expert, model, args.threads, rpc, logs, tag, ngl=args.ngl)
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


# -- when a split pays: a model that does not fit one host's memory -------------------------------------------------

NO_MMAP = ["-lm", "none"]  # weights resident in the process (llama.cpp's load mode without mmap)


@dataclass
class Fit:
    """One way of serving under (or without) the memory limit."""

    setting: str
    served: bool
    why: str  # "served", or what ended it
    peak_mb: dict[str, int]  # process -> peak resident memory (VmHWM), where it lived to be read
    decode: float | None = None
    identical: int = 0
    answers: int = 0


def peak_mb(pid: int) -> int | None:
    """A process's peak resident memory (``VmHWM``) in MiB, None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def limit_cgroup(name: str, limit_mb: int) -> memlimit.MemoryCgroup:
    group = memlimit.create(name, limit_mb)
    if group is None:
        raise RuntimeError(
            "no writable memory cgroup on this machine (cgroup v1's memory hierarchy, or v2 with the memory "
            "controller, under /sys/fs/cgroup): the memory limit cannot be put on a host"
        )
    return group


def _answers(url: str, prompts: Sequence[str], n_predict: int) -> tuple[list[float], list[list[int]]]:
    decode, tokens = [], []
    for prompt in prompts:
        dec, _, toks = measure(url, prompt, n_predict)
        decode.append(dec)
        tokens.append(toks)
    return decode, tokens


def memory_fits(
    net: HostNet,
    model: Path,
    limit_mb: int,
    logs: Path,
    *,
    threads: int = 1,
    n_predict: int = 32,
    prompts: Sequence[str] = tuple(PROMPTS),
    worker_counts: Sequence[int] = (1, 2),
    ngl: int = 99,
) -> list[Fit]:
    """Serve ``model`` on the third host of ``net`` locally without a limit, locally under ``limit_mb`` and split over
    each of ``worker_counts`` workers on the first hosts with every host under ``limit_mb``; each as a :class:`Fit`."""
    expert = net.hosts[-1]
    if len(net.hosts) < max(worker_counts, default=0) + 1:
        raise ValueError(f"{max(worker_counts)} workers and the expert need as many hosts plus one")
    groups: list[memlimit.MemoryCgroup] = []
    fits: list[Fit] = []
    try:
        url, _, proc = serve(expert, model, threads, [], logs, "mem-local-unlimited", extra=NO_MMAP)
        try:
            decode, reference = _answers(url, prompts, n_predict)
            peak = {"llama-server": peak_mb(proc.pid) or 0}
            fits.append(Fit("local, no limit (reference)", True, "served", peak, statistics.median(decode)))
        finally:
            expert.stop(proc)

        group = limit_cgroup(f"{expert.name}-local", limit_mb)
        groups.append(group)
        try:
            url, _, proc = serve(expert, model, threads, [], logs, "mem-local-limited", cgroup=group, extra=NO_MMAP)
        except (RuntimeError, TimeoutError) as exc:
            kills = group.oom_kills()
            why = f"OOM-killed while loading (oom_kill {kills})" if kills else f"did not start: {str(exc)[-300:]}"
            fits.append(Fit(f"local, {limit_mb} MiB", False, why, {}))
        else:
            try:
                decode, tokens = _answers(url, prompts, n_predict)
                same = sum(t == r for t, r in zip(tokens, reference, strict=True))
                peak = {"llama-server": peak_mb(proc.pid) or 0}
                fits.append(
                    Fit(f"local, {limit_mb} MiB", True, "served", peak, statistics.median(decode), same, len(tokens))
                )
            except (httpx.HTTPError, KeyError, ValueError) as exc:  # the server died answering: the result here
                kills = group.oom_kills()
                why = f"OOM-killed while answering (oom_kill {kills})" if kills else f"failed: {exc}"
                fits.append(Fit(f"local, {limit_mb} MiB", False, why, {}))
            finally:
                expert.stop(proc)

        for count in worker_counts:
            hosts = tuple(net.hosts[:count])
            fits.append(
                _split_fit(expert, hosts, model, limit_mb, logs, threads, n_predict, prompts, reference, groups, ngl)
            )
    finally:
        for group in groups:
            _remove(group)
    return fits


def _remove(group: memlimit.MemoryCgroup, tries: int = 50) -> None:
    """Remove a cgroup; the kernel may refuse for a moment after its last process ended, so try a while."""
    for _ in range(tries):
        group.remove()
        if not group.path.exists():
            return
        time.sleep(0.1)
    print(f"warning: could not remove {group.path}", file=sys.stderr)


def _split_fit(
    expert: Host,
    hosts: tuple[Host, ...],
    model: Path,
    limit_mb: int,
    logs: Path,
    threads: int,
    n_predict: int,
    prompts: Sequence[str],
    reference: list[list[int]],
    groups: list[memlimit.MemoryCgroup],
    ngl: int,
) -> Fit:
    """The model split over fresh workers on ``hosts``, the expert and each worker under ``limit_mb``."""
    n = len(hosts)
    setting = f"{n} worker{'s' if n > 1 else ''}, {limit_mb} MiB each host"
    mine: list[memlimit.MemoryCgroup] = []
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for w in hosts:
            mine.append(limit_cgroup(f"{w.name}-worker{n}", limit_mb))
            cmd = [str(binaries.rpc_server()), "-H", w.ip, "-p", str(WORKER_PORT), "-t", str(threads)]
            log = logs / f"mem-worker{n}-{w.name}.log"
            workers.append(start_in(w, cmd, log, mine[-1]))
            wait_tcp(w, w.ip, WORKER_PORT, proc=workers[-1], log=log)
        mine.append(limit_cgroup(f"{expert.name}-split{n}", limit_mb))
        rpc = [w.reach(WORKER_PORT) for w in hosts]
        try:
            url, _, proc = serve(
                expert,
                model,
                threads,
                rpc,
                logs,
                f"mem-split{n}",
                cgroup=mine[-1],
                extra=NO_MMAP,
                workers=workers,
                ngl=ngl,
            )
        except (RuntimeError, TimeoutError) as exc:
            killed = [w.name for w, g in zip(hosts, mine, strict=False) if g.oom_kills()]
            killed += ["the expert"] if mine[-1].oom_kills() else []
            if killed:
                return Fit(setting, False, f"OOM-killed while loading: {', '.join(killed)}", {})
            return Fit(setting, False, f"did not start: {str(exc)[-300:]}", {})
        try:
            decode, tokens = _answers(url, prompts, n_predict)
            peaks = {"llama-server": peak_mb(proc.pid) or 0}
            peaks |= {f"worker {w.name}": peak_mb(p.pid) or 0 for w, p in zip(hosts, workers, strict=True)}
            same = sum(t == r for t, r in zip(tokens, reference, strict=True))
            return Fit(setting, True, "served", peaks, statistics.median(decode), same, len(tokens))
        finally:
            expert.stop(proc)
    finally:
        for w, p in zip(hosts, workers, strict=False):
            w.stop(p)
        groups.extend(mine)


def print_fits(model: Path, limit_mb: int, fits: list[Fit], ngl: int = 99) -> None:
    size = model.stat().st_size / 2**20
    print(
        f"model {model.name} ({size:.0f} MiB file), loaded without mmap, -c 2048, split with -ngl {ngl}; "
        f"limit {limit_mb} MiB per host"
    )
    print(f"{'serving':30}{'served':>8}{'decode tok/s':>14}{'same':>8}  peak resident MiB / why not")
    for fit in fits:
        decode = f"{fit.decode:.1f}" if fit.decode is not None else "-"
        same = f"{fit.identical}/{fit.answers}" if fit.answers else "-"
        detail = ", ".join(f"{k} {v}" for k, v in fit.peak_mb.items()) if fit.served else fit.why
        print(f"{fit.setting:30}{'yes' if fit.served else 'no':>8}{decode:>14}{same:>8}  {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalogue name or GGUF path")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the prompts per configuration")
    parser.add_argument("--n-predict", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="threads of each worker and of llama-server")
    parser.add_argument("--cache", action="store_true", help="workers keep the weights in a local cache (-c)")
    parser.add_argument(
        "--ngl",
        type=int,
        default=99,
        help="layers on the workers (-ngl): 99 puts the output layer there too; the model's layer count (30 for "
        "SmolLM2) keeps it on the expert, so no logits cross the link",
    )
    parser.add_argument(
        "--memory-limit",
        type=int,
        metavar="MB",
        help="instead of the link table: limit every host to MB of memory and show local vs split under it",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.n_predict < 1 or args.threads < 1 or args.ngl < 1:
        parser.error("--rounds, --n-predict, --threads and --ngl must be positive")
    if args.memory_limit is not None and args.memory_limit < 16:
        parser.error("--memory-limit must be at least 16 MB")

    model = resolve(args.model)
    if args.memory_limit is not None:
        with tempfile.TemporaryDirectory(prefix="rpc-memory-") as tmp, host_net(3, Path(tmp) / "net") as net:
            fits = memory_fits(
                net, model, args.memory_limit, Path(tmp), threads=args.threads, n_predict=args.n_predict, ngl=args.ngl
            )
        print_fits(model, args.memory_limit, fits, args.ngl)
        return
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
            f"threads {args.threads}, worker cache {'on' if args.cache else 'off'}, -ngl {args.ngl}"
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
