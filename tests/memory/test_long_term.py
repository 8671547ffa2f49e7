"""The long-term store: search, persistence across reopen, crash safety (torn writes, kill -9), and recall
by meaning with real MiniLM embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.memory.conftest import kill_9_while_running

from fleetmind.contracts.protocol import ChatMessage
from fleetmind.llm.embeddings import LlamaEmbedder, normalize
from fleetmind.memory import MemoryFormatError
from fleetmind.memory.long_term import LongTermMemory
from fleetmind.memory.short_term import ConversationHistory

DIM = 384


def unit(n: int, seed: int = 0) -> np.ndarray:
    return normalize(np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32))


@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_vectors_are_found_and_survive_a_reopen(tmp_path: Path, kind: str) -> None:
    vectors = unit(300)
    store = LongTermMemory(tmp_path, None, kind=kind, snapshot_every=100)  # type: ignore[arg-type]
    ids = store.add_vectors(vectors, [f"item {i}" for i in range(300)], conversation_id="c1")
    assert ids == list(range(300))
    hit = store.search_vectors(vectors[42], k=3)[0][0]
    assert (hit.id, hit.text, hit.conversation_id) == (42, "item 42", "c1") and hit.score == pytest.approx(1.0)
    # 300 added, snapshot every 100: the snapshot lags; the reopened store adds the rest from vectors.f32.
    reopened = LongTermMemory(tmp_path, None, kind=kind)  # type: ignore[arg-type]
    assert len(reopened) == 300
    assert [r[0].id for r in reopened.search_vectors(vectors[[7, 299]], k=1)] == [7, 299]


def test_an_owners_memories_are_recalled_only_for_that_owner(tmp_path: Path) -> None:
    vectors = unit(3, seed=5)
    store = LongTermMemory(tmp_path, None)  # type: ignore[arg-type]
    store.add_vectors(vectors[:1], ["alice's secret"], owner="key-alice")
    store.add_vectors(vectors[1:2], ["bob's secret"], owner="key-bob")
    store.add_vectors(vectors[2:], ["everyone knows"])  # no owner: shared
    everything = vectors.sum(axis=0)  # a query close to all three

    def seen(owner: str | None) -> set[str]:
        return {h.text for h in store.search_vectors(everything, k=10, owner=owner)[0]}

    assert seen("key-alice") == {"alice's secret", "everyone knows"}
    assert seen("key-bob") == {"bob's secret", "everyone knows"}
    assert seen(None) == {"everyone knows"}
    assert {h.text for h in store.search_vectors(everything, k=10)[0]} == {  # maintenance view: all
        "alice's secret",
        "bob's secret",
        "everyone knows",
    }
    # the owner is part of the durable record
    reopened = LongTermMemory(tmp_path, None)  # type: ignore[arg-type]
    assert {h.text for h in reopened.search_vectors(everything, k=10, owner="key-bob")[0]} == {
        "bob's secret",
        "everyone knows",
    }


def test_torn_writes_are_cut_back_to_the_last_whole_memory(tmp_path: Path) -> None:
    vectors = unit(5)
    store = LongTermMemory(tmp_path, None)  # type: ignore[arg-type]
    store.add_vectors(vectors, [f"m{i}" for i in range(5)])
    store.close()
    # What a kill -9 in the middle of the sixth write leaves: half a vector row, then half a record line.
    with (tmp_path / "vectors.f32").open("ab") as fh:
        fh.write(unit(1, seed=9).tobytes()[:700])
    with (tmp_path / "records.jsonl").open("ab") as fh:
        fh.write(b'{"id": 5, "text": "half')
    reopened = LongTermMemory(tmp_path, None)  # type: ignore[arg-type]
    assert len(reopened) == 5
    assert reopened.search_vectors(vectors[4], k=1)[0][0].text == "m4"
    # and the files are whole again: the next memory lands as number 5
    reopened.add_vectors(unit(1, seed=3), ["m5"])
    assert LongTermMemory(tmp_path, None).search_vectors(unit(1, seed=3), k=1)[0][0].text == "m5"  # type: ignore[arg-type]


def test_a_store_of_another_dimension_is_refused(tmp_path: Path) -> None:
    LongTermMemory(tmp_path, None)  # type: ignore[arg-type]
    with pytest.raises(MemoryFormatError, match="dim"):
        LongTermMemory(tmp_path, None, dim=128)  # type: ignore[arg-type]


_WRITER = """
import sys, numpy as np
from pathlib import Path
from fleetmind.memory.long_term import LongTermMemory
store = LongTermMemory(Path(sys.argv[1]), None, snapshot_every=7)
rng = np.random.default_rng(1)
i = 0
while True:
    v = rng.standard_normal((1, 384)).astype(np.float32)
    store.add_vectors(v / np.linalg.norm(v), [f"memory {i}"])
    i += 1
    if i == 20:
        print("ready", flush=True)
"""


def test_kill_9_during_writes_loses_at_most_the_memory_being_written(tmp_path: Path) -> None:
    kill_9_while_running(_WRITER, tmp_path)  # it keeps writing (and snapshotting every 7) for a while
    lines = (tmp_path / "records.jsonl").read_bytes().split(b"\n")
    complete = [json.loads(line) for line in lines[:-1]]
    store = LongTermMemory(tmp_path, None)  # type: ignore[arg-type]
    # Every memory whose record line was complete survives: its vector was fsynced before the line was written.
    assert len(store) == len(complete) >= 20
    assert [r["text"] for r in complete] == [f"memory {i}" for i in range(len(complete))]
    rng = np.random.default_rng(1)
    for i in range(len(store)):
        v = rng.standard_normal((1, 384)).astype(np.float32)
        if i in (0, len(store) - 1):
            assert store.search_vectors(v / np.linalg.norm(v), k=1)[0][0].text == f"memory {i}"


def test_short_term_history_is_bounded() -> None:
    history = ConversationHistory(max_messages=3, max_conversations=2)
    history.extend("a", [ChatMessage(role="user", content=str(i)) for i in range(5)])
    assert [m.content for m in history.get("a")] == ["2", "3", "4"]
    history.extend("b", [ChatMessage(role="user", content="b")])
    history.extend("c", [ChatMessage(role="user", content="c")])
    assert history.get("a") == [] and len(history) == 2
    copy = ConversationHistory()
    copy.restore(history.dump())
    assert copy.dump() == history.dump()


@pytest.mark.asyncio
async def test_recall_by_meaning_with_real_embeddings(tmp_path: Path, embeddings_url: str) -> None:
    embedder = LlamaEmbedder(embeddings_url)
    try:
        store = LongTermMemory(tmp_path, embedder)
        facts = [
            "My dog is called Biscuit and he loves the beach.",
            "I work as a nurse at the city hospital.",
            "The wifi password at home is on the fridge.",
            "My favourite programming language is Rust.",
        ]
        for fact in facts:
            await store.add(fact, conversation_id="first")
        store.close()
        reopened = LongTermMemory(tmp_path, embedder)
        assert (await reopened.search("What is my pet's name?", k=1))[0].text == facts[0]
        assert (await reopened.search("Where is my job?", k=1))[0].text == facts[1]
        assert (await reopened.search("Which coding language do I like best?", k=1))[0].text == facts[3]
    finally:
        await embedder.aclose()
