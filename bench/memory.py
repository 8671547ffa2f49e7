"""Benchmark: the long-term memory's FAISS index — recall@10 against exact search, and query latency.

For each store size (default 1e4 and 1e5) it fills a :class:`~fleetmind.memory.long_term.LongTermMemory`'s
index kind (HNSW, the default, at several ``efSearch`` values) with synthetic unit vectors of dimension 384 (the
MiniLM width), asks 1000 held-out queries one at a time (how the agent asks), and compares the top 10 with an
exact inner-product search (``IndexFlatIP``) over the same vectors. Three synthetic sets, named in the output:
``clustered`` (points around one topic centre per 20 items: sentence embeddings cluster by subject),
``lowrank`` (a 24-dimensional latent space projected to 384 plus noise: real embeddings have a low intrinsic
dimension) and ``uniform`` (independent Gaussian directions: no structure at all, the worst case for any graph
index). These are synthetic vectors, not MiniLM embeddings; ``--embed-url`` times the embedding call itself.
Run from the repo root: ``python -m bench.memory``. Goal: recall@10 ≥ 0.95 with p95 ≤ 5 ms at 1e5.
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np

from fleetmind.llm.embeddings import normalize
from fleetmind.memory.long_term import HNSW_EF_CONSTRUCTION, HNSW_M

DIM = 384


def synthetic(kind: str, n: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        data = rng.standard_normal((n + queries, DIM), dtype=np.float32)
    elif kind == "lowrank":
        # sentence embeddings vary along far fewer directions than they have (intrinsic dimension in the tens)
        latent = rng.standard_normal((n + queries, 24), dtype=np.float32)
        data = latent @ rng.standard_normal((24, DIM), dtype=np.float32)
        data += 0.1 * np.sqrt(24) * rng.standard_normal((n + queries, DIM), dtype=np.float32)
    else:
        # one topic per 20 items at every size, so the task is equally hard at 1e4 and 1e5
        centres = rng.standard_normal((max(1, n // 20), DIM), dtype=np.float32)
        assign = rng.integers(0, len(centres), n + queries)
        # noise of the same order as the centre: neighbours share a topic but are far from identical
        data = centres[assign] + 0.8 * rng.standard_normal((n + queries, DIM), dtype=np.float32)
    data = normalize(data)
    return data[:n], data[n:]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def run(kind: str, n: int, n_queries: int, efs: list[int]) -> list[tuple[str, ...]]:
    base, queries = synthetic(kind, n, n_queries)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(base)
    rows: list[tuple[str, ...]] = []
    flat_lat: list[float] = []
    truth = []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = exact.search(q[None, :], 10)
        flat_lat.append((time.perf_counter() - t0) * 1000)
        truth.append(set(ids[0].tolist()))
    rows.append(
        (
            kind,
            f"{n:.0e}",
            "flat (exact)",
            "-",
            "1.000",
            f"{statistics.median(flat_lat):.3f}",
            f"{percentile(flat_lat, 95):.3f}",
            "0.0",
        )
    )
    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)  # as LongTermMemory builds it
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(base)
    build_s = time.perf_counter() - t0
    for ef in efs:
        index.hnsw.efSearch = ef
        lat: list[float] = []
        hits = 0
        for q, want in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            _, ids = index.search(q[None, :], 10)
            lat.append((time.perf_counter() - t0) * 1000)
            hits += len(want & set(ids[0].tolist()))
        rows.append(
            (
                kind,
                f"{n:.0e}",
                f"hnsw M={HNSW_M}",
                str(ef),
                f"{hits / (10 * len(queries)):.3f}",
                f"{statistics.median(lat):.3f}",
                f"{percentile(lat, 95):.3f}",
                f"{build_s:.1f}",
            )
        )
    return rows


def embed_latency(url: str, n: int = 50) -> tuple[float, float]:
    import httpx

    lat = []
    with httpx.Client(timeout=30) as http:
        for i in range(n):
            t0 = time.perf_counter()
            http.post(f"{url}/v1/embeddings", json={"input": [f"What did I say about my dog number {i}?"]})
            lat.append((time.perf_counter() - t0) * 1000)
    return statistics.median(lat), percentile(lat, 95)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--ef", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument(
        "--sets", nargs="+", default=["clustered", "lowrank", "uniform"], choices=["clustered", "lowrank", "uniform"]
    )
    parser.add_argument("--embed-url", help="also time one-query embedding calls against this llama-server")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)  # the agent asks one query at a time; threads only add overhead there
    header = ("vectors", "n", "index", "efSearch", "recall@10", "p50 ms", "p95 ms", "build s")
    rows: list[tuple[str, ...]] = [header]
    for kind in args.sets:
        for n in args.sizes:
            rows.extend(run(kind, n, args.queries, args.ef))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print(f"dimension {DIM}, synthetic unit vectors, {args.queries} single queries, k=10, faiss {faiss.__version__}")
    if args.embed_url:
        p50, p95 = embed_latency(args.embed_url)
        print(f"embedding one query through llama-server (MiniLM GGUF): p50 {p50:.2f} ms, p95 {p95:.2f} ms")


if __name__ == "__main__":
    main()
