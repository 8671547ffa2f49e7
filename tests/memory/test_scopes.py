"""A recall scoped to an owner is exact (its own memories and the shared ones, never another owner's), after writes,
retirements and a reopen; a scope too large for exact search goes to the FAISS index, still scoped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fleetmind.memory.long_term as long_term
from fleetmind.llm.embeddings import normalize
from fleetmind.memory.long_term import LongTermMemory

DIM = 384
OWNERS = [f"key-{i}" for i in range(30)]


def clustered(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((max(1, n // 20), DIM), dtype=np.float32)
    return normalize(centres[rng.integers(0, len(centres), n)] + 0.8 * rng.standard_normal((n, DIM), dtype=np.float32))


def filled(path: Path, rng: np.random.Generator) -> tuple[LongTermMemory, np.ndarray, list[str | None]]:
    store = LongTermMemory(path, embedder=None)
    vectors = clustered(3000, rng)
    owners: list[str | None] = [None if i % 10 == 0 else OWNERS[i % len(OWNERS)] for i in range(len(vectors))]
    for owner in {*owners}:
        rows = [i for i, o in enumerate(owners) if o == owner]
        store.add_vectors(vectors[rows], [f"memory {i}" for i in rows], owner=owner)
    # ids follow the order of the writes: the truth is what the store holds, read back from it
    records, stored = store.dump()
    return store, stored, [r.get("owner") for r in records]


def exact(vectors: np.ndarray, owners: list[str | None], owner: str, query: np.ndarray, k: int) -> list[int]:
    allowed = np.array([o in (None, owner) for o in owners])
    scores = np.where(allowed, vectors @ query, -np.inf)
    return [int(i) for i in np.argsort(-scores)[:k]]


def test_a_scoped_recall_finds_exactly_the_nearest_of_what_the_owner_may_see(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    store, vectors, owners = filled(tmp_path / "m", rng)
    queries = clustered(60, rng)
    for n, query in enumerate(queries):
        owner = OWNERS[n % len(OWNERS)]
        hits = store.search_vectors(query[None, :], 3, owner=owner)[0]
        assert [h.id for h in hits] == exact(vectors, owners, owner, query, 3)
        assert all(owners[h.id] in (None, owner) for h in hits)
        assert hits[0].score == pytest.approx(float(vectors[hits[0].id] @ query), abs=1e-5)
    store.close()


def test_retired_memories_leave_the_scope_and_stay_out_after_a_reopen(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    store, vectors, _ = filled(tmp_path / "m", rng)
    query = vectors[5]  # the owner's own memory is its own nearest
    owner = store.dump()[0][5].get("owner") or OWNERS[0]
    first = store.search_vectors(query[None, :], 1, owner=owner)[0][0]
    newer = store.add_vectors(query[None, :], ["a newer memory"], owner=owner, supersedes=[first.id])[0]
    assert store.search_vectors(query[None, :], 3, owner=owner)[0][0].id == newer
    assert first.id not in [h.id for h in store.search_vectors(query[None, :], 50, owner=owner)[0]]
    store.close()
    again = LongTermMemory(tmp_path / "m", embedder=None)
    found = [h.id for h in again.search_vectors(query[None, :], 50, owner=owner)[0]]
    assert found[0] == newer and first.id not in found
    again.close()


def test_a_scope_too_large_for_exact_search_is_searched_by_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(long_term, "EXACT_MAX", 10)
    rng = np.random.default_rng(9)
    store, vectors, owners = filled(tmp_path / "m", rng)
    for n, query in enumerate(vectors[:40]):
        owner = OWNERS[n % len(OWNERS)]
        hits = store.search_vectors(query[None, :], 3, owner=owner)[0]
        assert hits and all(owners[h.id] in (None, owner) for h in hits)
    store.close()
