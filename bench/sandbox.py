"""Benchmark: start-up cost of code_runner's bubblewrap sandbox vs a plain ``python -c pass``, side by side.

Runs, interleaved and alternating which goes first: (1) plain ``/usr/bin/python3 -I -S -c pass`` as a subprocess,
(2) the same interpreter inside the sandbox through :func:`fleetmind.tools.sandbox.run_python` (temp folder,
rlimits, uid drop, bwrap with every namespace unshared), and (3) a full ``code_runner`` call through the
ToolRunner (validation, policy, audit line). Prints p50/p95 milliseconds and the ratios to plain. Run from the repo
root: ``python -m bench.sandbox [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from fleetmind.tools.base import SandboxLimits, ToolContext
from fleetmind.tools.registry import ToolRegistry, load_entry_points
from fleetmind.tools.runner import build_runner
from fleetmind.tools.sandbox import run_python
from fleetmind.tools.settings import ToolsSettings


def plain(python: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([python, "-I", "-S", "-c", "pass"], check=True)
    return (time.perf_counter() - t0) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--python", default="/usr/bin/python3")
    args = parser.parse_args()
    limits = SandboxLimits(python=args.python)

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        (state / "ws").mkdir()
        runner = build_runner(
            state_dir=state,
            context=ToolContext(workspace=state / "ws", sandbox=limits),
            settings=ToolsSettings(),
            registry=ToolRegistry(t for t in load_entry_points() if t.name == "code_runner"),
        )

        async def sandbox() -> float:
            t0 = time.perf_counter()
            result = await run_python("pass", limits=limits)
            assert result.ok, result.reason
            return (time.perf_counter() - t0) * 1000

        async def tool() -> float:
            t0 = time.perf_counter()
            outcome = await runner.run("code_runner", {"code": "pass"}, requester="bench")
            assert outcome.ok, outcome.error
            return (time.perf_counter() - t0) * 1000

        async def plain_async() -> float:
            return await asyncio.to_thread(plain, args.python)

        paths: dict[str, Callable[[], Awaitable[float]]] = {
            "plain": plain_async,
            "sandbox": sandbox,
            "code_runner": tool,
        }
        for fn in paths.values():  # warm-up, not counted
            await fn()
        results: dict[str, list[float]] = {name: [] for name in paths}
        names = list(paths)
        for i in range(args.rounds):
            order = names[i % 3 :] + names[: i % 3]  # rotate who goes first
            for name in order:
                results[name].append(await paths[name]())

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=100)[94] if len(values) > 1 else values[0]

    print(f"{args.rounds} interleaved runs each, interpreter {args.python} -I -S")
    print(f"{'path':<13}{'p50 ms':>10}{'p95 ms':>10}{'min ms':>10}")
    base = statistics.median(results["plain"])
    for name, values in results.items():
        print(f"{name:<13}{statistics.median(values):>10.1f}{p95(values):>10.1f}{min(values):>10.1f}")
    for name in ("sandbox", "code_runner"):
        med = statistics.median(results[name])
        print(f"ratio {name}/plain: {med / base:.2f}x (+{med - base:.1f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
