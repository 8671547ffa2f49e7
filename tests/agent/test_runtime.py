"""The agent pipeline end to end: real pipecat pipeline, real llama-server on the tiny model."""

from __future__ import annotations

import asyncio

import pytest
from agent_testkit import HungServer, collect, direct_completion, make_request

from fleetmind.agent import RuntimeNotRunningError
from fleetmind.contracts.protocol import SamplingParams

pytestmark = pytest.mark.asyncio


async def test_answer_matches_a_direct_call(make_runtime, llama_server_url: str) -> None:
    runtime = await make_runtime(experts=f"general={llama_server_url}")
    events = await collect(runtime.submit(make_request("Tell me about the sea.")))

    deltas, last = events[:-1], events[-1]
    assert deltas and all(e.type == "delta" for e in deltas)
    assert last.type == "done"
    assert last.expert == "general"
    assert last.finish_reason in ("stop", "length")
    assert last.usage is not None and last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    assert {e.id for e in events} == {events[0].id}

    expected_text, expected_usage = direct_completion(llama_server_url, "Tell me about the sea.")
    assert "".join(e.text for e in deltas) == expected_text
    assert last.usage.completion_tokens == expected_usage["completion_tokens"]
    assert last.usage.prompt_tokens == expected_usage["prompt_tokens"]
    assert runtime.stats.served == 1 and runtime.stats.by_expert["general"] == 1


async def test_a_held_stream_joins_tokens_loses_nothing_and_ends_with_the_answer(
    make_runtime, llama_server_url: str
) -> None:
    runtime = await make_runtime(experts=f"general={llama_server_url}")
    params = SamplingParams(temperature=0.0, seed=1, max_tokens=24)
    plain = await collect(runtime.submit(make_request("Tell me about the sea.", params=params)))
    # held for a minute: everything after the first piece comes out joined, and the end ends the wait at once
    async with asyncio.timeout(30):
        held = await collect(runtime.submit(make_request("Tell me about the sea.", params=params), hold_s=60))

    assert plain[-1].type == held[-1].type == "done"
    assert held[-1].usage == plain[-1].usage and held[-1].usage is not None
    assert held[-1].usage.completion_tokens > 3
    text = "".join(e.text for e in plain[:-1])
    assert "".join(e.text for e in held[:-1]) == text
    assert len(plain) - 1 > 3, "the plain stream gives every token as it comes"
    # the first piece goes out as it comes (it is not held); everything after it waits for the hold or the end
    assert [e.type for e in held] == ["delta", "delta", "done"], [e.text for e in held]
    assert 0 < len(held[0].text) < len(text)


async def test_max_tokens_and_stop_pass_through(make_runtime, llama_server_url: str) -> None:
    runtime = await make_runtime(experts=f"general={llama_server_url}")
    params = SamplingParams(temperature=0.0, seed=1, max_tokens=3)
    events = await collect(runtime.submit(make_request("Count.", params=params)))
    assert events[-1].type == "done"
    assert events[-1].finish_reason == "length"
    assert events[-1].usage is not None and events[-1].usage.completion_tokens == 3


async def test_concurrent_requests_each_get_their_own_answer(make_runtime, llama_server_url: str) -> None:
    runtime = await make_runtime(experts=f"general={llama_server_url}")
    prompts = [f"Question number {i}: what is {i} plus {i}?" for i in range(5)]
    requests = [make_request(p) for p in prompts]

    results = await asyncio.gather(*(collect(runtime.submit(r)) for r in requests))

    for request, prompt, events in zip(requests, prompts, results, strict=True):
        assert all(e.id == request.id for e in events)
        assert events[-1].type == "done", events[-1]
        assert events[-1].usage is not None and events[-1].usage.completion_tokens > 0
        assert "".join(e.text for e in events[:-1]) == direct_completion(llama_server_url, prompt)[0]
    assert runtime.stats.served == 5


async def test_failover_from_a_dead_expert(make_runtime, llama_server_url: str, dead_url: str) -> None:
    runtime = await make_runtime(experts=f"dead={dead_url},live={llama_server_url}")
    events = await collect(runtime.submit(make_request("Hello there.")))

    assert events[-1].type == "done"
    assert events[-1].expert == "live"
    assert all(e.expert == "live" for e in events)
    assert "".join(e.text for e in events[:-1]) == direct_completion(llama_server_url, "Hello there.")[0]
    health = {h.name: (h, healthy) for h, healthy in runtime.directory.snapshot()}
    assert health["dead"][0].failed == 1 and health["dead"][1] is False
    assert health["live"][0].served == 1 and health["live"][1] is True


async def test_requested_expert_fails_over(make_runtime, llama_server_url: str, dead_url: str) -> None:
    runtime = await make_runtime(experts=f"general={llama_server_url},coder={dead_url}")
    events = await collect(runtime.submit(make_request("Write code.", model="coder")))
    assert events[-1].type == "done"
    assert events[-1].expert == "general"


async def test_every_expert_dead_is_an_expert_error(make_runtime, dead_url: str) -> None:
    runtime = await make_runtime(experts=f"general={dead_url}")
    events = await collect(runtime.submit(make_request("Hi.")))
    assert [e.type for e in events] == ["error"]
    assert events[0].code == "expert_error"
    assert "general" in (events[0].message or "")


async def test_unknown_model_is_model_not_found(make_runtime, llama_server_url: str) -> None:
    runtime = await make_runtime(experts=f"general={llama_server_url}")
    events = await collect(runtime.submit(make_request("Hi.", model="gpt-4")))
    assert [(e.type, e.code) for e in events] == [("error", "model_not_found")]
    assert "general" in (events[0].message or "")  # the known models are named


async def test_timeout_is_an_error_event(make_runtime, hung_server: HungServer) -> None:
    runtime = await make_runtime(experts=f"general={hung_server.url}")
    events = await collect(runtime.submit(make_request("Hi.", timeout_s=0.5)))
    assert [(e.type, e.code) for e in events] == [("error", "timeout")]
    assert hung_server.accepted.is_set()
    # The runtime keeps serving after a timeout.
    assert runtime.running
    assert runtime.stats.errors["timeout"] == 1


async def test_cancelling_the_consumer_cancels_the_expert_call(make_runtime, hung_server: HungServer) -> None:
    runtime = await make_runtime(experts=f"general={hung_server.url}")
    request = make_request("Hi.", timeout_s=60)

    async def consume() -> None:
        async for _ in runtime.submit(request):
            pass

    consumer = asyncio.create_task(consume())
    assert await asyncio.to_thread(hung_server.got_request.wait, 10)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    # The expert's connection is closed because the request was cancelled, long before its 60 s deadline.
    assert await asyncio.to_thread(hung_server.closed_by_client.wait, 10)
    for _ in range(100):
        if runtime.stats.errors["cancelled"]:
            break
        await asyncio.sleep(0.05)
    assert runtime.stats.errors["cancelled"] == 1
    assert runtime.in_flight == 0


async def test_submit_needs_a_running_runtime(make_runtime, llama_server_url: str) -> None:
    runtime = await make_runtime(experts=f"general={llama_server_url}")
    await runtime.stop()
    with pytest.raises(RuntimeNotRunningError):
        await collect(runtime.submit(make_request("Hi.")))


async def test_a_request_every_expert_rejects_is_invalid(make_runtime, llama_server_url: str) -> None:
    runtime = await make_runtime(experts=f"general={llama_server_url}")
    params = SamplingParams(response_format={"type": "bogus"})
    events = await collect(runtime.submit(make_request("Hi.", params=params)))
    assert [(e.type, e.code) for e in events] == [("error", "invalid_request")]
    assert "response_format" in (events[0].message or "")


async def test_a_duplicate_request_id_is_refused(make_runtime, hung_server: HungServer) -> None:
    runtime = await make_runtime(experts=f"general={hung_server.url}")
    first = make_request("Hi.", timeout_s=60)
    stream = runtime.submit(first)
    consumer = asyncio.create_task(collect(stream))
    assert await asyncio.to_thread(hung_server.accepted.wait, 10)
    events = await collect(runtime.submit(first.model_copy()))
    assert [(e.type, e.code) for e in events] == [("error", "invalid_request")]
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
