"""A fact that changed replaces the old one: told "blue", then "green", only "green" is recalled, also after the store
is reopened or torn by a kill; two different facts both stay; one owner's fact never replaces another's (real
all-MiniLM-L6-v2 embeddings served by llama-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from tests.memory.conftest import kill_9_while_running

from fleetmind.llm.embeddings import LlamaEmbedder, normalize
from fleetmind.memory.long_term import IndexKind, LongTermMemory
from fleetmind.memory.supersede import replaces

# what the remember step uses (RememberParams' defaults)
DUPLICATE_ABOVE, REPLACE_ABOVE = 0.92, 0.50

CHANGES = [  # (told first, told later, a question that should find the later one)
    ("My favourite colour is blue.", "My favourite colour is green.", "What is my favourite colour?"),
    ("I live in Paris.", "I live in Berlin.", "Which city do I live in?"),
    ("My dog is called Rex.", "My dog is called Max.", "What is my dog's name?"),
    ("The printer is on the second floor.", "The printer is on the third floor.", "Where is the printer?"),
]


@pytest.fixture
async def embedder(embeddings_url: str) -> AsyncIterator[LlamaEmbedder]:
    client = LlamaEmbedder(embeddings_url)
    yield client
    await client.aclose()


async def tell(memory: LongTermMemory, text: str, owner: str | None = "key-ada") -> tuple[int | None, tuple[int, ...]]:
    stored = await memory.add_fact(text, duplicate_above=DUPLICATE_ABOVE, replace_above=REPLACE_ABOVE, owner=owner)
    return stored.id, stored.replaced


async def recalled(memory: LongTermMemory, question: str, owner: str | None = "key-ada") -> list[str]:
    return [h.text for h in await memory.search(question, k=10, owner=owner)]


@pytest.mark.parametrize(
    ("old", "new"),
    [(old, new) for old, new, _ in CHANGES]
    + [
        ("I am 34 years old.", "I'm 35 years old."),
        ("My phone number is 555 1234.", "My phone number is 555 9876."),
        ("The wifi password is on the fridge.", "The wifi password is in the drawer."),
        ("I work at a bakery.", "I work at a hospital."),
        ("My favourite colour is blue.", "Actually, my favourite colour is green."),  # said as a correction
        ("I live in Paris.", "By the way, I now live in Berlin."),
    ],
)
def test_the_rule_sees_a_changed_value(old: str, new: str) -> None:
    assert replaces(new, old)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("I live in Paris.", "I work at a bakery."),  # another verb
        ("My sister lives in Lyon.", "My sister works in Lyon."),
        ("My brother lives in Lyon.", "My sister lives in Lyon."),  # another subject
        ("My dog is called Rex.", "My cat is called Rex."),
        ("The printer is on the second floor.", "The printer is out of toner."),  # another kind of value
        ("I am 34 years old.", "I am allergic to peanuts."),
        ("My dog is called Rex.", "My dog is afraid of thunder."),
        ("I speak French.", "I speak German."),  # a verb of many values
        ("I have a dog.", "I have a cat."),
        ("My name is Alice. I live in Paris.", "My name is Bob."),  # more than one fact in the old memory
        ("My favourite colour is blue.", "My favourite colour is blue."),  # the same: a duplicate, not a change
    ],
)
def test_the_rule_leaves_other_facts_alone(old: str, new: str) -> None:
    assert not replaces(new, old)


@pytest.mark.asyncio
async def test_a_changed_fact_is_recalled_alone_also_after_a_reopen(tmp_path: Path, embedder: LlamaEmbedder) -> None:
    memory = LongTermMemory(tmp_path, embedder)
    for old, new, _ in CHANGES:
        old_id, _ = await tell(memory, old)
        new_id, replaced = await tell(memory, new)
        assert new_id is not None and replaced == (old_id,), (old, new)
    # told again, the new value is a duplicate
    assert await tell(memory, "My favourite colour is green.") == (None, ())
    assert memory.count(owner="key-ada") == len(CHANGES)
    for _, new, question in CHANGES:
        found = await recalled(memory, question)
        assert found[0] == new, (question, found)
    memory.close()

    reopened = LongTermMemory(tmp_path, embedder)
    assert len(reopened) == len(CHANGES)
    for old, new, question in CHANGES:
        found = await recalled(reopened, question)
        assert found[0] == new and old not in found, (question, found)
    # what a saved state carries is what is recalled: the old values are not in it
    records, vectors = reopened.dump(owner="key-ada")
    assert sorted(r["text"] for r in records) == sorted(new for _, new, _ in CHANGES) and len(vectors) == len(CHANGES)


@pytest.mark.asyncio
async def test_two_different_facts_both_stay(tmp_path: Path, embedder: LlamaEmbedder) -> None:
    memory = LongTermMemory(tmp_path, embedder)
    facts = [
        "I live in Paris.",
        "I work at a bakery.",
        "My sister lives in Lyon.",
        "My sister works in Lyon.",
        "The printer is on the second floor.",
        "The printer is out of toner.",
    ]
    for fact in facts:
        stored, replaced = await tell(memory, fact)
        assert stored is not None and replaced == (), fact
    assert memory.count(owner="key-ada") == len(facts)
    assert "I live in Paris." in await recalled(memory, "Where do I live?")
    assert "I work at a bakery." in await recalled(memory, "Where do I work?")


@pytest.mark.asyncio
async def test_one_owners_change_leaves_another_owners_memory_alone(tmp_path: Path, embedder: LlamaEmbedder) -> None:
    memory = LongTermMemory(tmp_path, embedder)
    await tell(memory, "My favourite colour is blue.", owner="key-alice")
    _, replaced = await tell(memory, "My favourite colour is green.", owner="key-bob")
    assert replaced == ()
    assert (await recalled(memory, "What is my favourite colour?", owner="key-alice"))[0] == (
        "My favourite colour is blue."
    )
    assert (await recalled(memory, "What is my favourite colour?", owner="key-bob"))[0] == (
        "My favourite colour is green."
    )
    # A shared memory (no owner) is not an owner's to replace, and a change of it is not a duplicate of it
    # (0.95 similar): the owner's own value is stored beside it.
    await tell(memory, "The printer is on the second floor.", owner=None)
    stored, replaced = await tell(memory, "The printer is on the third floor.", owner="key-alice")
    assert stored is not None and replaced == ()
    bob_sees = await recalled(memory, "Where is the printer?", owner="key-bob")
    assert bob_sees[0] == "The printer is on the second floor." and "The printer is on the third floor." not in bob_sees
    memory.close()
    reopened = LongTermMemory(tmp_path, embedder)
    assert reopened.count(owner="key-alice") == 2 and reopened.count(owner="key-bob") == 1
    assert reopened.count(owner=None) == 1


@pytest.mark.asyncio
async def test_a_kill_while_the_change_is_written_leaves_the_old_fact(tmp_path: Path, embedder: LlamaEmbedder) -> None:
    memory = LongTermMemory(tmp_path / "m", embedder)
    await tell(memory, "I live in Paris.")
    records_before = (tmp_path / "m" / "records.jsonl").read_bytes()
    await tell(memory, "I live in Berlin.")
    whole = (tmp_path / "m" / "records.jsonl").read_bytes()
    assert b'"supersedes": [0]' in whole[len(records_before) :]
    # What a kill -9 mid-write leaves: the new vector row whole, the record line that retires the old fact torn.
    torn = whole[: len(records_before) + (len(whole) - len(records_before)) // 2]
    (tmp_path / "m" / "records.jsonl").write_bytes(torn)
    reopened = LongTermMemory(tmp_path / "m", embedder)
    assert await recalled(reopened, "Which city do I live in?") == ["I live in Paris."]
    # and the next try goes through as if nothing had happened
    assert (await tell(reopened, "I live in Berlin."))[1] == (0,)
    assert await recalled(LongTermMemory(tmp_path / "m", embedder), "Which city do I live in?") == ["I live in Berlin."]


@pytest.mark.asyncio
async def test_a_saved_state_carries_only_the_new_value(tmp_path: Path, embedder: LlamaEmbedder) -> None:
    memory = LongTermMemory(tmp_path / "a", embedder)
    await tell(memory, "My favourite colour is blue.", owner="key-bob")
    await tell(memory, "My favourite colour is blue.")
    await tell(memory, "My favourite colour is green.")
    saved = memory.dump(owner="key-ada")  # what the agent's state file holds for Ada
    assert [r["text"] for r in saved[0]] == ["My favourite colour is green."]
    # loaded back into the same store (ids renumbered) and into another one
    memory.replace_owned("key-ada", *saved)
    other = LongTermMemory(tmp_path / "b", embedder)
    await tell(other, "My favourite colour is red.")
    other.replace_owned("key-ada", *saved)
    for store in (memory, other, LongTermMemory(tmp_path / "a", embedder)):
        assert await recalled(store, "What is my favourite colour?") == ["My favourite colour is green."]
    assert (await recalled(memory, "What is my favourite colour?", owner="key-bob"))[
        0
    ] == "My favourite colour is blue."
    # and the loaded fact still changes like any other
    assert len((await tell(memory, "My favourite colour is yellow."))[1]) == 1
    assert await recalled(memory, "What is my favourite colour?") == ["My favourite colour is yellow."]


@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_superseded_vectors_are_never_found_with_either_index(tmp_path: Path, kind: IndexKind) -> None:
    vectors = normalize(np.random.default_rng(3).standard_normal((50, 384)).astype(np.float32))
    store = LongTermMemory(tmp_path, None, kind=kind, snapshot_every=20)
    store.add_vectors(vectors[:49], [f"m{i}" for i in range(49)], owner="k")
    store.add_vectors(vectors[49:], ["m49"], owner="k", supersedes=[7, 8])
    with pytest.raises(ValueError, match="not stored"):
        store.add_vectors(vectors[:1], ["x"], supersedes=[500])
    for opened in (store, LongTermMemory(tmp_path, None, kind=kind)):
        assert len(opened) == 48 and opened.count(owner="k") == 48
        for i in (7, 8):
            assert all(h.text not in ("m7", "m8") for h in opened.search_vectors(vectors[i], k=5)[0])
            assert all(h.text not in ("m7", "m8") for h in opened.search_vectors(vectors[i], k=5, owner="k")[0])
        assert opened.search_vectors(vectors[9], k=1)[0][0].text == "m9"


_CHANGER = """
import sys, numpy as np
from pathlib import Path
from fleetmind.memory.long_term import LongTermMemory
store = LongTermMemory(Path(sys.argv[1]), None, snapshot_every=5)
rng = np.random.default_rng(2)
i = 0
while True:  # one fact changed again and again: each value retires the one before
    v = rng.standard_normal((1, 384)).astype(np.float32)
    store.add_vectors(v / np.linalg.norm(v), [f"value {i}"], owner="k", supersedes=[i - 1] if i else [])
    i += 1
    if i == 20:
        print("ready", flush=True)
"""


def test_kill_9_while_a_fact_keeps_changing_leaves_exactly_one_value(tmp_path: Path) -> None:
    kill_9_while_running(_CHANGER, tmp_path)  # it keeps changing it (and snapshotting every 5) for a while
    complete = (tmp_path / "records.jsonl").read_bytes().count(b"\n")
    store = LongTermMemory(tmp_path, None)
    # the last value whose record line was whole is the one value left; every earlier one stays retired
    assert complete >= 20 and len(store) == 1 and store.count(owner="k") == 1
    records, _ = store.dump()
    assert [r["text"] for r in records] == [f"value {complete - 1}"]
    rng = np.random.default_rng(2)
    vectors = normalize(rng.standard_normal((complete, 384)).astype(np.float32))
    for i in (0, complete // 2, complete - 1):
        assert [h.text for h in store.search_vectors(vectors[i], k=3, owner="k")[0]] == [f"value {complete - 1}"]
