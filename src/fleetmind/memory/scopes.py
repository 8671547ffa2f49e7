"""The long-term memory's searches: the FAISS index over the whole store, and exact search within one owner's
memories, each owner's vectors (and the shared ones) in a matrix of their own.

A recall is scoped: an API key sees its own memories and the shared ones, never another key's. HNSW searches the
whole store and keeps what the owner may see, and it finds a true neighbour less often the more of the store belongs
to others (bench.memory, 1e5 memories over 100 owners: recall@3 0.60 at efSearch 128, 0.93 at 512 for 5 ms). An
owner's scope is small (a few thousand memories), and an exact k-NN over it (FAISS, one core) takes about a
millisecond; so a scope of up to ``EXACT_MAX`` memories is searched here, a larger one by the index.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import faiss
import numpy as np

IndexKind = Literal["hnsw", "flat"]
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80

# the largest scope searched exactly: ~20k x 384 floats is ~30 MB read per query, ~3 ms on a 2009-era core
EXACT_MAX = 20_000


def new_index(dim: int, kind: IndexKind = "hnsw", *, hnsw_m: int = HNSW_M, ef_search: int = 128) -> faiss.Index:
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = ef_search
    return index


class _Scope:
    """One owner's (or the shared) vectors in a growing matrix, with their memory ids."""

    def __init__(self, dim: int) -> None:
        self.vectors = np.zeros((16, dim), dtype=np.float32)
        self.ids = np.zeros(16, dtype=np.int64)
        self.n = 0

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        need = self.n + len(ids)
        if need > len(self.ids):
            size = max(need, 2 * len(self.ids))
            self.vectors = np.concatenate(
                [self.vectors[: self.n], np.zeros((size - self.n, self.vectors.shape[1]), np.float32)]
            )
            self.ids = np.concatenate([self.ids[: self.n], np.zeros(size - self.n, np.int64)])
        self.vectors[self.n : need] = vectors
        self.ids[self.n : need] = ids
        self.n = need

    def drop(self, gone: set[int]) -> None:
        keep = ~np.isin(self.ids[: self.n], np.fromiter(gone, dtype=np.int64))
        kept = int(keep.sum())
        if kept != self.n:
            self.vectors[:kept] = self.vectors[: self.n][keep]
            self.ids[:kept] = self.ids[: self.n][keep]
            self.n = kept


class OwnerScopes:
    """Every owner's memories (``None``: the shared ones), for :meth:`search`."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._scopes: dict[str | None, _Scope] = {}

    def rebuild(self, records: list[dict[str, object]], vectors: np.ndarray | None, retired: set[int]) -> None:
        """Every scope afresh from the store's records and their vectors (row i is memory i)."""
        self._scopes.clear()
        by_owner: dict[str | None, list[int]] = {}
        for i, r in enumerate(records):
            if i not in retired:
                owner = r.get("owner")
                by_owner.setdefault(owner if isinstance(owner, str) else None, []).append(i)
        for owner, ids in by_owner.items():
            assert vectors is not None
            self.add(owner, ids, vectors[ids])

    def add(self, owner: str | None, ids: Iterable[int], vectors: np.ndarray) -> None:
        scope = self._scopes.setdefault(owner, _Scope(self.dim))
        scope.add(np.fromiter(ids, dtype=np.int64), vectors)

    def retire(self, ids: Iterable[int]) -> None:
        gone = set(ids)
        if gone:
            for scope in self._scopes.values():
                scope.drop(gone)

    def _visible(self, owner: str | None) -> list[_Scope]:
        """The scopes ``owner`` may search: its own and the shared one."""
        return [s for o, s in self._scopes.items() if (o is None or o == owner) and s.n]

    def size(self, owner: str | None) -> int:
        """How many memories ``owner`` may see."""
        return sum(s.n for s in self._visible(owner))

    def search(self, owner: str | None, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """The ``k`` most similar memories ``owner`` may see, per query: (id, score), best first."""
        parts = self._visible(owner)
        if not parts or k < 1:
            return [[] for _ in queries]
        # FAISS's exact k-NN on one core (SIMD, its own top-k): with OpenMP's threads it waited for the core an expert
        # or the embedder held (one busy core: 13.9 ms p50 against 0.7 ms; a BLAS product: bench.memory p95 7.5 ms).
        # The thread count is this thread's own OpenMP setting, put back after.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            found = [
                (faiss.knn(queries, s.vectors[: s.n], min(k, s.n), metric=faiss.METRIC_INNER_PRODUCT), s) for s in parts
            ]
        finally:
            faiss.omp_set_num_threads(threads)
        scores = np.concatenate([d for (d, _), _ in found], axis=1)
        ids = np.concatenate([s.ids[i] for (_, i), s in found], axis=1)
        out = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            best = np.argsort(-row_scores, kind="stable")[:k]
            out.append([(int(row_ids[j]), float(row_scores[j])) for j in best])
        return out
