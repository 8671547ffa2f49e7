"""A long conversation stays short: messages that fall out of the history are folded into a running summary that
leads the next requests (and survives save/load)."""

from __future__ import annotations

import asyncio

from tests.agent.agent_testkit import collect, direct_chat, make_request

from fleetmind.memory.short_term import ConversationHistory

HEADER = "Summary of the earlier part of this conversation:"


async def _summary(runtime, cid: str, wait_s: float = 20.0) -> str:
    # the summary is written after the answer went out: wait for it
    for _ in range(int(wait_s / 0.05)):
        if text := runtime.history.summary(cid):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError("no summary was written")


async def test_evicted_history_becomes_a_summary_that_leads_the_next_request(
    make_runtime, llama_server_url: str
) -> None:
    runtime = await make_runtime(experts=f"general={llama_server_url}", history_max_messages=4)
    for text in ("My name is Ada.", "I live in Paris.", "I like tea."):
        await collect(runtime.submit(make_request(text, conversation_id="c1")))
    summary = await _summary(runtime, "c1")
    kept = runtime.history.get("c1")
    assert len(kept) == 4 and kept[0].content == "I live in Paris."

    events = await collect(runtime.submit(make_request("Who am I?", conversation_id="c1")))
    expected = direct_chat(
        llama_server_url,
        [
            {"role": "system", "content": f"{HEADER}\n{summary}"},
            *({"role": m.role, "content": m.content} for m in kept),
            {"role": "user", "content": "Who am I?"},
        ],
    )
    assert "".join(e.text for e in events[:-1]) == expected


def test_summary_survives_dump_and_restore() -> None:
    from fleetmind.contracts.protocol import ChatMessage

    history = ConversationHistory(max_messages=2)
    evicted = history.extend("c", [ChatMessage(role="user", content=str(i)) for i in range(3)])
    assert [m.content for m in evicted] == ["0"]
    history.set_summary("c", "zero was said")
    again = ConversationHistory(max_messages=2)
    again.restore(history.dump())
    assert again.summary("c") == "zero was said"
    assert [m.content for m in again.get("c")] == ["1", "2"]
