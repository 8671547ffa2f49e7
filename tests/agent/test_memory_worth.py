"""Memory worth recalling, from outside the agent: what a user tells it once is recalled in a later conversation of
the same owner, an unrelated question recalls nothing, and questions, requests and a fact said again are not stored
(real all-MiniLM-L6-v2 embeddings, a real llama-server, the default workflow)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from agent_testkit import collect, direct_chat, make_request

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.workflows.steps import RecallParams

pytestmark = pytest.mark.asyncio

OWNER = "key-ada"
LEARN_EVENTS = ("memory_write", "memory_duplicate", "memory_skip", "memory_unavailable")


def events_of(caplog: pytest.LogCaptureFixture, event: str, request_id: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if getattr(r, "event", None) == event and getattr(r, "request_id", None) == request_id
    ]


async def ask(runtime: AgentRuntime, caplog: pytest.LogCaptureFixture, text: str, **kwargs: Any) -> tuple[str, str]:
    """Ask, and wait for the learn step that runs after the answer: (answer text, what the learn step did)."""
    request = make_request(text, **kwargs)
    events = await collect(runtime.submit(request))
    assert events[-1].type == "done", events[-1]
    async with asyncio.timeout(30):
        # the learn step's log line is the only sign it ran (the caller's stream ended before it)
        while not (learnt := [e for e in LEARN_EVENTS if events_of(caplog, e, request.id)]):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return "".join(e.text for e in events[:-1]), learnt[0]


async def test_told_once_recalled_later_and_nothing_for_the_unrelated(
    tmp_path: Path, make_runtime, llama_server_url: str, embeddings_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="fleetmind.agent.workflow")
    runtime = await make_runtime(
        experts=f"general={llama_server_url}", embeddings_url=embeddings_url, memory_dir=str(tmp_path / "memory")
    )
    assert runtime.memory is not None
    said = {
        "Remember that my sister lives in Lyon.": "memory_write",
        "What is the capital of France?": "memory_skip",
        "Write a haiku about old computers.": "memory_skip",
        "Hi, I play the cello in an orchestra.": "memory_write",
        "my sister lives in Lyon": "memory_duplicate",  # the same fact again, said another way
    }
    for text, outcome in said.items():
        assert (await ask(runtime, caplog, text, conversation_id="monday", owner=OWNER))[1] == outcome, text
    assert runtime.memory.count(owner=OWNER) == 2

    # A later conversation of the same owner: the fact comes back, and the expert is asked with it.
    answer, _ = await ask(runtime, caplog, "Where does my sister live?", conversation_id="friday", owner=OWNER)
    (recall,) = [r for r in caplog.records if getattr(r, "event", None) == "memory_recall"][-1:]
    assert [m["text"] for m in recall.memories] == ["My sister lives in Lyon."]  # type: ignore[attr-defined]
    note = RecallParams().header + "\n- My sister lives in Lyon."
    assert answer == direct_chat(
        llama_server_url,
        [{"role": "system", "content": note}, {"role": "user", "content": "Where does my sister live?"}],
    )

    # An unrelated question recalls nothing at all, and so does another owner's same question.
    for text, owner in (("How many legs does a spider have?", OWNER), ("Where does my sister live?", "key-bob")):
        request = make_request(text, conversation_id="saturday", owner=owner)
        events = await collect(runtime.submit(request))
        assert events[-1].type == "done"
        (recall,) = events_of(caplog, "memory_recall", request.id)
        assert recall.memories == [], (text, owner, recall.memories)  # type: ignore[attr-defined]
