"""Benchmark: the recall the agent makes on every request — one query embedding, then a search scoped to its owner.

Starts the default stack as `fleetmind up` does and uses its embedding server (llama-server --embedding on the
packaged all-MiniLM-L6-v2), exactly as the agent's ``recall_memory`` step does: the request's one query embedding
(a unique text each time, so no cache helps), then :meth:`LongTermMemory.search_vectors` with the request's owner.
For each store size (default 1e4 and 1e5 memories, spread over ``--owners`` owners, plus a shared tenth) the store
is a real :class:`~fleetmind.memory.long_term.LongTermMemory` (HNSW, the default) filled with synthetic unit vectors
of MiniLM's width (clustered by topic, as sentence embeddings are): embedding 1e5 texts would take hours here.
Printed side by side: the embedding call, the scoped search and the two together (p50/p95, ms); the scoped search's
recall@k against an exact search over what that owner may see, and the embedding's share of the total; then the
goals. Run from the repo root: ``python -m bench.memory`` (``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from tests.e2e.launcher import start_stack, stop_stack

from fleetmind.llm.embeddings import LlamaEmbedder, normalize
from fleetmind.memory.long_term import LongTermMemory
from fleetmind.security.service import SecretSource, load_secret

DIM = 384
K = 3  # what the default workflow's recall asks for
GOAL_RECALL = 0.95
GOAL_SEARCH_P95_MS = 5.0


def clustered(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((max(1, n // 20), DIM), dtype=np.float32)
    return normalize(centres[rng.integers(0, len(centres), n)] + 0.8 * rng.standard_normal((n, DIM), dtype=np.float32))


def pct(values: list[float], q: int) -> float:
    return float(np.percentile(np.array(values), q))


def fill(
    directory: Path, n: int, owners: int, rng: np.random.Generator
) -> tuple[LongTermMemory, np.ndarray, list[str | None]]:
    memory = LongTermMemory(directory, None, snapshot_every=10**9)
    vectors = clustered(n, rng)
    # a tenth shared (no owner), the rest spread over the owners
    who: list[str | None] = [None if i % 10 == 0 else f"key-{rng.integers(owners)}" for i in range(n)]
    by_owner: dict[str | None, list[int]] = {}
    for i, owner in enumerate(who):
        by_owner.setdefault(owner, []).append(i)
    for owner, ids in by_owner.items():
        memory.add_vectors(vectors[ids], [f"memory {i}" for i in ids], owner=owner)
    # the store's row order is by owner now: keep vectors and owners in that order for the exact search
    order = [i for ids in by_owner.values() for i in ids]
    return memory, vectors[order], [who[i] for i in order]


async def measure(
    embedder: LlamaEmbedder,
    memory: LongTermMemory,
    vectors: np.ndarray,
    who: list,
    owners: int,
    queries: int,
    seed: int,
) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"embed": [], "search": [], "total": [], "recall": []}
    owner_of = np.array([o or "" for o in who])
    for i in range(queries):
        owner = f"key-{rng.integers(owners)}"
        t0 = time.perf_counter()
        vector = (await embedder.embed([f"What did I tell you about thing number {seed}-{i}?"]))[0]
        t1 = time.perf_counter()
        memory.search_vectors(vector[None, :], K, owner=owner)
        t2 = time.perf_counter()
        out["embed"].append((t1 - t0) * 1000)
        out["search"].append((t2 - t1) * 1000)
        out["total"].append((t2 - t0) * 1000)
        # quality: a query near this owner's memories (a text's embedding is far from synthetic vectors)
        mine = np.flatnonzero((owner_of == owner) | (owner_of == ""))
        target = normalize(vectors[rng.choice(mine)][None, :] + 0.5 * rng.standard_normal((1, DIM)).astype(np.float32))
        found = {h.id for h in memory.search_vectors(target, K, owner=owner)[0]}
        exact = set(mine[np.argsort(-(vectors[mine] @ target[0]))[:K]].tolist())
        out["recall"].append(len(found & exact) / K)
    return out


async def bench(embeddings_url: str, secret: str | None, args: argparse.Namespace, work: Path) -> bool:
    embedder = LlamaEmbedder(embeddings_url, secret=SecretSource(secret) if secret else None)
    rng = np.random.default_rng(0)
    met = True
    top = (0.0, float("inf"))
    try:
        await embedder.embed(["warm-up"])
        print(
            f"{'memories':>9}{'owners':>7}  {'embed p50/p95':>15}  {'search p50/p95':>15}  {'total p50/p95':>15}",
            end="",
        )
        print(f"  {'recall@' + str(K):>9}  {'embed share':>11}")
        for n in args.sizes:
            memory, vectors, who = fill(work / f"mem-{n}", n, args.owners, rng)
            r = await measure(embedder, memory, vectors, who, args.owners, args.queries, seed=n)
            memory.close()
            share = statistics.median(r["embed"]) / statistics.median(r["total"])
            recall = statistics.fmean(r["recall"])
            cols = [f"{pct(r[p], 50):6.2f}/{pct(r[p], 95):6.2f} ms" for p in ("embed", "search", "total")]
            print(
                f"{n:>9}{args.owners:>7}  {cols[0]:>15}  {cols[1]:>15}  {cols[2]:>15}  {recall:>9.3f}  {share:>10.0%}"
            )
            met = met and recall >= GOAL_RECALL and pct(r["search"], 95) <= GOAL_SEARCH_P95_MS
            if n == max(args.sizes):
                top = (recall, pct(r["search"], 95))
    finally:
        await embedder.aclose()
    load = os.getloadavg()[0]
    print(f"{args.queries} queries per size, k={K}, one owner per query; load average {load:.2f}")
    print("goals (at the largest size):")
    print(f"  [{'met' if top[0] >= GOAL_RECALL else 'NOT met'}] scoped recall@{K} >= {GOAL_RECALL} ({top[0]:.3f})")
    print(
        f"  [{'met' if top[1] <= GOAL_SEARCH_P95_MS else 'NOT met'}] scoped search p95 <= {GOAL_SEARCH_P95_MS:g} ms "
        f"({top[1]:.2f} ms; the embedding call comes on top, see embed share)"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="memories in the store")
    parser.add_argument("--owners", type=int, default=100, help="API keys the memories belong to")
    parser.add_argument("--queries", type=int, default=300, help="recalls per size")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the stack's model (catalogue name or GGUF)")
    args = parser.parse_args()
    if min(args.sizes) < 100 or args.owners < 1 or args.queries < 1:
        parser.error("--sizes at least 100, --owners and --queries at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), args.model, timeout=240, threads=None)
        try:
            url = f"http://127.0.0.1:{stack.ports['embeddings']}"
            asyncio.run(bench(url, load_secret(stack.state_dir), args, Path(tmp)))
        finally:
            stop_stack(stack)


if __name__ == "__main__":
    main()
