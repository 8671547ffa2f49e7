"""The outbox between the agent pipeline and an HTTP reader: holding joins deltas and never delays the end."""

from __future__ import annotations

import asyncio

import pytest

from fleetmind.agent.outbox import Outbox
from fleetmind.contracts.protocol import AgentEvent, Usage

pytestmark = pytest.mark.asyncio


def delta(text: str, expert: str = "general") -> AgentEvent:
    return AgentEvent(type="delta", id="r1", text=text, expert=expert)


DONE = AgentEvent(type="done", id="r1", finish_reason="stop", usage=Usage(prompt_tokens=3, completion_tokens=4))


async def test_a_reader_that_does_not_hold_wakes_for_every_event() -> None:
    box = Outbox()
    reader = asyncio.ensure_future(box.wait())
    await asyncio.sleep(0)
    assert not reader.done()
    box.put(delta("Hel"))
    await asyncio.wait_for(reader, 5)
    assert box.drain() == [delta("Hel")]


async def test_holding_joins_the_deltas_of_one_expert_and_keeps_the_rest_in_order() -> None:
    box = Outbox()
    loop = asyncio.get_running_loop()
    reader = asyncio.ensure_future(box.wait(loop.time() + 60))
    for piece in ("Hel", "lo", ", "):
        box.put(delta(piece))
        await asyncio.sleep(0)
    assert not reader.done(), "a delta woke a holding reader"
    box.put(delta("world", expert="coding"))  # a failover mid-answer: another expert's text stays apart
    box.put(DONE)
    await asyncio.wait_for(reader, 5)  # the end wakes it at once, an hour before the hold is over
    assert box.drain() == [delta("Hello, "), delta("world", expert="coding"), DONE]
    assert box.drain() == []


async def test_a_hold_that_ends_wakes_the_reader_with_what_came() -> None:
    box = Outbox()
    loop = asyncio.get_running_loop()
    box.put(delta("a"))
    box.put(delta("b"))
    await asyncio.wait_for(box.wait(loop.time() + 0.05), 5)
    assert [e.text for e in box.drain()] == ["ab"]
    # nothing came during the next hold: the reader wakes empty-handed at its end
    await asyncio.wait_for(box.wait(loop.time() + 0.05), 5)
    assert box.drain() == []


async def test_an_answer_already_ended_is_not_held() -> None:
    box = Outbox()
    box.put(delta("x"))
    box.put(DONE)
    await asyncio.wait_for(box.wait(asyncio.get_running_loop().time() + 60), 5)
    assert box.drain() == [delta("x"), DONE]
