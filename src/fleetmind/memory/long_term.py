"""Long-term memory: texts with their embeddings, searched by meaning with FAISS, kept crash-safe on disk.

Under its directory the store keeps ``records.jsonl`` (one JSON line per memory) and ``vectors.f32`` (one
float32 row per memory), both append-only and fsynced on every write, vector first; plus ``index.faiss``, a
snapshot of the FAISS index written to a temp file, fsynced and renamed into place, never modified in place.
The files are the truth and the snapshot a cache: on open, a torn last line or row (a kill -9 mid-write) is cut
off, and whatever the snapshot lacks is added from ``vectors.f32``. So a crash loses at most the memory being
written, never the index. Vectors are unit length and the index uses inner product, i.e. cosine similarity.
The default index is HNSW (graph; sub-millisecond at 1e5 items, see ``bench/memory.py``); ``flat`` is exact. A
search scoped to an owner is exact while the owner sees at most ``EXACT_MAX`` memories (:mod:`.scopes`).

A fact that changed replaces the old one (:meth:`LongTermMemory.add_fact`, the rule in
:mod:`fleetmind.memory.supersede`): the new memory's record lists the ids it ``supersedes``, so one appended line
both adds the new fact and retires the old ones, and a kill before that line is whole leaves the old fact standing.
Retired memories stay in the files and the index but are never found, counted or dumped again.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from fleetmind.atomic import write_atomic
from fleetmind.llm.embeddings import Embedder, normalize
from fleetmind.memory import MemoryFormatError
from fleetmind.memory.scopes import EXACT_MAX, IndexKind, OwnerScopes, new_index
from fleetmind.memory.supersede import replaces

FORMAT_VERSION = 1


# search_vectors' default: no owner filter at all
ANY_OWNER = "*"


@dataclass(frozen=True)
class MemoryHit:
    """A memory found by a search; ``score`` is the cosine similarity to the query."""

    id: int
    text: str
    score: float
    conversation_id: str | None = None
    ts: float = 0.0


@dataclass(frozen=True)
class Stored:
    """What :meth:`LongTermMemory.add_fact` did: the new memory's ``id`` (None: the owner had the fact already)
    and the ids of the owner's memories it ``replaced``."""

    id: int | None
    replaced: tuple[int, ...] = ()


class LongTermMemory:
    """The store in one directory. ``await add(text)``, ``await search(query)``; ``close()`` snapshots."""

    def __init__(
        self,
        directory: Path,
        embedder: Embedder | None,
        *,
        dim: int = 384,
        kind: IndexKind = "hnsw",
        ef_search: int = 128,
        snapshot_every: int = 256,
    ) -> None:
        self.directory = directory
        self.embedder = embedder
        self.dim = dim
        self.kind = kind
        self.ef_search = ef_search
        self.snapshot_every = snapshot_every
        self._lock = threading.Lock()
        self._unique = asyncio.Lock()
        self._records: list[dict[str, Any]] = []
        self._retired: set[int] = set()  # superseded memories: never found again
        self._search_params: Any = None  # the FAISS selector that leaves them out, while there are any
        self._index = new_index(dim, kind, ef_search=ef_search)
        self._scopes = OwnerScopes(dim)
        self._since_snapshot = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._open()

    # -- files -------------------------------------------------------------------------------------------
    @property
    def _records_path(self) -> Path:
        return self.directory / "records.jsonl"

    @property
    def _vectors_path(self) -> Path:
        return self.directory / "vectors.f32"

    @property
    def _index_path(self) -> Path:
        return self.directory / "index.faiss"

    @property
    def _meta_path(self) -> Path:
        return self.directory / "meta.json"

    def _open(self) -> None:
        meta = {"version": FORMAT_VERSION, "dim": self.dim}
        if self._meta_path.exists():
            found = json.loads(self._meta_path.read_text())
            if found.get("version") != FORMAT_VERSION or found.get("dim") != self.dim:
                raise MemoryFormatError(f"{self._meta_path}: {found} does not match {meta}")
        else:
            write_atomic(self._meta_path, json.dumps(meta).encode())
        records = self._read_records()
        row = self.dim * 4
        size = self._vectors_path.stat().st_size if self._vectors_path.exists() else 0
        n = min(len(records), size // row)
        # Cut what a crash left half-written: a row without its record, a record without its row, a torn tail.
        self._truncate(self._vectors_path, n * row)
        self._records = records[:n]
        self._rewrite_records_if_longer(n)
        vectors = np.fromfile(self._vectors_path, dtype=np.float32).reshape(-1, self.dim) if n else None
        index = self._load_snapshot(n)
        if vectors is not None and index.ntotal < n:
            index.add(vectors[index.ntotal : n])
        self._index = index
        self._retire(i for r in self._records for i in r.get("supersedes", ()))
        self._scopes.rebuild(self._records, vectors, self._retired)

    def _read_records(self) -> list[dict[str, Any]]:
        if not self._records_path.exists():
            return []
        out: list[dict[str, Any]] = []
        with self._records_path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # torn last line
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    break
        return out

    def _rewrite_records_if_longer(self, n: int) -> None:
        """Cut ``records.jsonl`` to its first ``n`` complete lines (by byte offset, no rewrite)."""
        if not self._records_path.exists():
            return
        offset = 0
        with self._records_path.open("rb") as fh:
            for i, raw in enumerate(fh):
                if i >= n:
                    break
                offset += len(raw)
        self._truncate(self._records_path, offset)

    def _retire(self, ids: Iterable[int]) -> None:
        ids = set(ids)
        self._retired.update(ids)
        self._scopes.retire(ids)
        if not self._retired:
            self._search_params = None
            return
        # faiss keeps the selectors alive through the parameters that hold them (its stubs lack the HNSW ones)
        params: Any = faiss.SearchParameters()
        if isinstance(self._index, faiss.IndexHNSWFlat):
            params = faiss.SearchParametersHNSW(efSearch=self.ef_search)  # type: ignore[attr-defined]
        params.sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.fromiter(self._retired, dtype=np.int64)))
        self._search_params = params

    @staticmethod
    def _truncate(path: Path, size: int) -> None:
        if path.exists() and path.stat().st_size > size:
            with path.open("r+b") as fh:
                fh.truncate(size)
                os.fsync(fh.fileno())

    def _load_snapshot(self, n: int) -> faiss.Index:
        if self._index_path.exists():
            try:
                index = faiss.read_index(str(self._index_path))
            except RuntimeError:
                index = None  # unreadable snapshot: rebuild from the vectors
            if index is not None and index.d == self.dim and index.ntotal <= n:
                if isinstance(index, faiss.IndexHNSWFlat):
                    index.hnsw.efSearch = self.ef_search
                return index
        return new_index(self.dim, self.kind, ef_search=self.ef_search)

    def snapshot(self) -> None:
        """Write the index snapshot (temp file + fsync + rename)."""
        with self._lock:
            data = faiss.serialize_index(self._index)
            write_atomic(self._index_path, data.tobytes())
            self._since_snapshot = 0

    # -- writing and searching ---------------------------------------------------------------------------
    def add_vectors(
        self,
        vectors: np.ndarray,
        texts: Sequence[str],
        conversation_id: str | None = None,
        *,
        owner: str | None = None,
        supersedes: Sequence[int] = (),
    ) -> list[int]:
        """Store texts with their (unit) vectors; durable when this returns. ``owner`` (an API key's id) makes them
        visible only to searches by the same owner; without one they are shared. ``supersedes``: ids of memories
        retired by the same write (recorded in the first new record)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(vectors) != len(texts):
            raise ValueError("one vector per text")
        with self._lock:
            first = len(self._records)
            if not all(0 <= i < first for i in supersedes) or (supersedes and not texts):
                raise ValueError("supersedes names memories that are not stored")
            now = time.time()
            records: list[dict[str, Any]] = [
                {"id": first + i, "text": t, "conversation_id": conversation_id, "owner": owner, "ts": now}
                for i, t in enumerate(texts)
            ]
            if supersedes:
                records[0]["supersedes"] = sorted(set(supersedes))
            with self._vectors_path.open("ab") as fh:
                fh.write(vectors.tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            with self._records_path.open("ab") as fh:
                fh.write(b"".join(json.dumps(r).encode() + b"\n" for r in records))
                fh.flush()
                os.fsync(fh.fileno())
            self._records.extend(records)
            self._index.add(vectors)
            self._scopes.add(owner, range(first, first + len(records)), vectors)
            if supersedes:
                self._retire(supersedes)
            self._since_snapshot += len(records)
            due = self._since_snapshot >= self.snapshot_every
        if due:
            self.snapshot()
        return list(range(first, first + len(records)))

    def search_vectors(
        self, queries: np.ndarray, k: int = 10, *, owner: str | None = ANY_OWNER
    ) -> list[list[MemoryHit]]:
        """The ``k`` nearest memories per query. With an ``owner`` (None: nobody in particular), only that owner's
        memories and the shared ones; by default (:data:`ANY_OWNER`) every memory, for benchmarks and maintenance."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        scoped = owner != ANY_OWNER
        with self._lock:
            if not self._records:
                return [[] for _ in queries]
            if scoped and self._scopes.size(owner) <= EXACT_MAX:
                return [[self._hit(i, s) for i, s in row] for row in self._scopes.search(owner, queries, k)]
            # a scoped search looks further, then keeps what the owner may see
            wanted = min(len(self._records), max(k * 10, 64) if scoped else k)
            scores, ids = self._index.search(queries, wanted, params=self._search_params)
            out = []
            for row_s, row_i in zip(scores, ids, strict=True):
                hits = [self._hit(int(i), float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
                if scoped:
                    hits = [h for h in hits if self._records[h.id].get("owner") in (None, owner)]
                out.append(hits[:k])
            return out

    def _hit(self, i: int, score: float) -> MemoryHit:
        r = self._records[i]
        return MemoryHit(i, r["text"], score, r.get("conversation_id"), r.get("ts", 0.0))

    async def add(self, text: str, *, conversation_id: str | None = None, owner: str | None = None) -> int:
        vector = await self._embed([text])
        ids = await asyncio.to_thread(self.add_vectors, vector, [text], conversation_id, owner=owner)
        return ids[0]

    async def add_fact(
        self,
        text: str,
        *,
        duplicate_above: float,
        replace_above: float | None = None,
        vector: np.ndarray | None = None,
        conversation_id: str | None = None,
        owner: str | None = None,
    ) -> Stored:
        """Store the fact ``text`` for ``owner``, once. Among the owner's memories at least ``replace_above`` similar,
        those it changes (:func:`fleetmind.memory.supersede.replaces`: same subject and verb, another value) are
        retired by the same write, with the owner's copies of the new fact; else, when any memory the owner sees is
        at least ``duplicate_above`` similar (the same fact said again), nothing is stored. ``replace_above`` None:
        nothing is replaced. Another owner's memories (and the shared ones, for an owner) are never replaced.
        ``vector``: the text's unit embedding when the caller has it already (else it is embedded here)."""
        for value in (duplicate_above, replace_above):
            if value is not None and not -1.0 <= value <= 1.0:
                raise ValueError("thresholds are cosine similarities, between -1 and 1")
        vector = await self._embed([text]) if vector is None else normalize(np.asarray(vector).reshape(1, -1))
        async with self._unique:  # two writers of one fact must not both find it missing
            near = self.search_vectors(vector, 8, owner=owner)[0]
            changed = [
                h for h in near if replace_above is not None and h.score >= replace_above and replaces(text, h.text)
            ]
            if not changed and near and near[0].score >= duplicate_above:
                return Stored(None)
            # the old values go, and the owner's copies of the new one; another owner's (or shared) memories stay
            retire = [h for h in near if h in changed or h.score >= duplicate_above] if changed else []
            mine = tuple(h.id for h in retire if self._records[h.id].get("owner") == owner)
            ids = await asyncio.to_thread(
                self.add_vectors, vector, [text], conversation_id, owner=owner, supersedes=mine
            )
        return Stored(ids[0], mine)

    async def search(self, query: str, *, k: int = 5, owner: str | None = None) -> list[MemoryHit]:
        """Memories close in meaning to ``query`` that ``owner`` may see: its own and the shared ones."""
        vector = await self._embed([query])
        return self.search_vectors(vector, k, owner=owner)[0]

    async def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embedder is None:
            raise ValueError("this memory has no embedder: use add_vectors/search_vectors")
        return normalize(await self.embedder.embed(texts))

    def __len__(self) -> int:
        return len(self._records) - len(self._retired)

    def count(self, *, owner: str | None = ANY_OWNER) -> int:
        """How many memories ``owner`` has (exactly its own; default: all); superseded ones do not count."""
        if owner == ANY_OWNER:
            return len(self)
        with self._lock:
            return sum(1 for r in self._records if r.get("owner") == owner and r["id"] not in self._retired)

    def close(self) -> None:
        if self._since_snapshot:
            self.snapshot()

    # -- save / load -------------------------------------------------------------------------------------
    def dump(self, *, owner: str | None = ANY_OWNER) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Records and vectors of ``owner``'s memories (exactly its own; default: every memory), superseded ones
        left out."""
        with self._lock:
            return self._dump(owner)

    def _dump(self, owner: str | None) -> tuple[list[dict[str, Any]], np.ndarray]:
        n = len(self._records)
        vectors = np.fromfile(self._vectors_path, dtype=np.float32).reshape(-1, self.dim)[:n] if n else None
        # ids are renumbered by whoever loads a dump: what a record superseded means nothing there
        records = [{k: v for k, v in r.items() if k != "supersedes"} for r in self._records]
        if vectors is None:
            vectors = np.zeros((0, self.dim), np.float32)
        keep = [i for i, r in enumerate(records) if i not in self._retired and owner in (ANY_OWNER, r.get("owner"))]
        return [records[i] for i in keep], vectors[keep]

    def replace_all(self, records: Sequence[dict[str, Any]], vectors: np.ndarray) -> None:
        """Swap the whole store for ``records`` and ``vectors`` (a state being loaded)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(records) != len(vectors):
            raise MemoryFormatError("saved memory has a different number of texts and vectors")
        with self._lock:
            self._replace_all(records, vectors)

    def replace_owned(self, owner: str | None, records: Sequence[dict[str, Any]], vectors: np.ndarray) -> None:
        """Swap ``owner``'s memories for ``records`` (made ``owner``'s, whatever they said) and ``vectors``; every
        other owner's memories stay."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(records) != len(vectors):
            raise MemoryFormatError("saved memory has a different number of texts and vectors")
        with self._lock:
            everything, all_vectors = self._dump(ANY_OWNER)
            others = [i for i, r in enumerate(everything) if r.get("owner") != owner]
            merged = [everything[i] for i in others] + [{**dict(r), "owner": owner} for r in records]
            self._replace_all(merged, np.concatenate([all_vectors[others], vectors]))

    def _replace_all(self, records: Sequence[dict[str, Any]], vectors: np.ndarray) -> None:
        records = [{k: v for k, v in r.items() if k != "supersedes"} for r in records]
        lines = b"".join(json.dumps({**dict(r), "id": i}).encode() + b"\n" for i, r in enumerate(records))
        # Records first: until the vectors are replaced too, the next open cuts records to the old rows.
        write_atomic(self._vectors_path, b"")
        write_atomic(self._records_path, lines)
        write_atomic(self._vectors_path, vectors.tobytes())
        self._index_path.unlink(missing_ok=True)
        self._records = [{**dict(r), "id": i} for i, r in enumerate(records)]
        self._index = new_index(self.dim, self.kind, ef_search=self.ef_search)
        if len(vectors):
            self._index.add(vectors)
        self._retired.clear()
        self._retire(())
        self._scopes.rebuild(self._records, vectors, self._retired)
        self._since_snapshot = len(vectors)
