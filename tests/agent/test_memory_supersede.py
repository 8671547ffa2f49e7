"""A fact that changed, from outside the agent: a user tells it one favourite colour, later another, and a later
conversation after a restart recalls only the new one; two different facts both stay; another user's fact of the
same shape is untouched (real all-MiniLM-L6-v2 embeddings, a real llama-server, the default workflow)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from agent_testkit import collect, make_request

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings

pytestmark = pytest.mark.asyncio

ADA, BOB = "key-ada", "key-bob"


def event(caplog: pytest.LogCaptureFixture, name: str, request_id: str) -> logging.LogRecord | None:
    found = [r for r in caplog.records if getattr(r, "event", None) == name and r.request_id == request_id]  # type: ignore[attr-defined]
    return found[-1] if found else None


async def tell(
    runtime: AgentRuntime, caplog: pytest.LogCaptureFixture, text: str, owner: str, conversation: str
) -> list[int]:
    """Say ``text``; wait for the learn step (it runs after the answer): the ids of the memories it replaced."""
    request = make_request(text, owner=owner, conversation_id=conversation)
    assert (await collect(runtime.submit(request)))[-1].type == "done"
    async with asyncio.timeout(30):
        while (written := event(caplog, "memory_write", request.id)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return list(written.replaced)  # type: ignore[attr-defined]


async def recall(runtime: AgentRuntime, caplog: pytest.LogCaptureFixture, question: str, owner: str) -> list[str]:
    """Ask ``question`` in a new conversation: the memories the agent put before the expert."""
    request = make_request(question, owner=owner, conversation_id=f"later-{owner}")
    assert (await collect(runtime.submit(request)))[-1].type == "done"
    found = event(caplog, "memory_recall", request.id)
    assert found is not None
    return [m["text"] for m in found.memories]  # type: ignore[attr-defined]


async def test_a_changed_fact_replaces_the_old_one_across_conversations_and_a_restart(
    tmp_path: Path, llama_server_url: str, embeddings_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fleetmind.agent.workflow")
    settings = AgentSettings(
        experts=f"general={llama_server_url}", embeddings_url=embeddings_url, memory_dir=tmp_path / "memory"
    )
    first = AgentRuntime(settings=settings)
    await first.start()
    try:
        assert await tell(first, caplog, "My favourite colour is blue.", BOB, "bob-monday") == []
        assert await tell(first, caplog, "My favourite colour is blue.", ADA, "monday") == []
        assert await tell(first, caplog, "I live in Paris.", ADA, "monday") == []
        assert await tell(first, caplog, "I work at a bakery.", ADA, "tuesday") == []  # another fact: both stay
        assert len(await tell(first, caplog, "Actually, my favourite colour is green.", ADA, "wednesday")) == 1
        assert first.memory is not None and first.memory.count(owner=ADA) == 3
    finally:
        await first.stop()

    second = AgentRuntime(settings=settings)  # a new process, as far as the agent can tell
    await second.start()
    try:
        ada = await recall(second, caplog, "What is my favourite colour?", ADA)
        bob = await recall(second, caplog, "What is my favourite colour?", BOB)
        lives = await recall(second, caplog, "Where do I live?", ADA)
    finally:
        await second.stop()
    assert ada[0] == "My favourite colour is green." and "My favourite colour is blue." not in ada, ada
    assert bob == ["My favourite colour is blue."]  # Bob's own, untouched by Ada's change
    assert "I live in Paris." in lives, lives
