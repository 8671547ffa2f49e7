"""The event hub on its own: numbering, backlog and resume, threads, slow readers, and the logging bridge."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from fleetmind.events import Dropped, Event, EventHub, EventLogHandler, Subscription, json_safe


async def drain(sub: Subscription, n: int) -> list[Any]:
    items: list[Any] = []
    for _ in range(n):
        item = await sub.get(wait_s=5)
        assert item is not None, f"only {len(items)} of {n} items arrived"
        items.append(item)
    return items


async def test_seq_backlog_and_recent() -> None:
    hub = EventHub(backlog=5)
    events = [hub.publish("k", f"m{i}", n=i) for i in range(8)]
    assert [e.seq for e in events] == list(range(1, 9))
    assert hub.last_seq == 8
    assert [e.seq for e in hub.recent()] == [4, 5, 6, 7, 8]
    assert [e.seq for e in hub.recent(since=6)] == [7, 8]
    assert [e.seq for e in hub.recent(limit=2)] == [7, 8]
    assert events[2].data == {"n": 2} and events[2].level == "info"
    with pytest.raises(ValueError):
        hub.publish("k", "m", level="loud")  # type: ignore[arg-type]


async def test_subscribe_resumes_after_since_then_goes_live() -> None:
    hub = EventHub(backlog=100)
    for i in range(10):
        hub.publish("k", str(i))
    with hub.subscribe(since=7) as sub:
        hub.publish("k", "live")
        items = await drain(sub, 4)
    assert [i.seq for i in items] == [8, 9, 10, 11]
    assert items[-1].message == "live"
    assert hub.subscribers == 0


async def test_a_since_older_than_the_backlog_gets_a_gap_notice() -> None:
    hub = EventHub(backlog=5)
    for i in range(20):
        hub.publish("k", str(i))
    with hub.subscribe(since=3) as sub:
        first, *rest = await drain(sub, 6)
    assert first == Dropped(count=12, first_seq=4, last_seq=15, reason="backlog")
    assert [e.seq for e in rest] == [16, 17, 18, 19, 20]


async def test_a_since_beyond_the_last_seq_means_an_earlier_hub_and_starts_over() -> None:
    hub = EventHub(backlog=10)
    for i in range(3):
        hub.publish("k", str(i))
    with hub.subscribe(since=999) as sub:
        assert [e.seq for e in await drain(sub, 3)] == [1, 2, 3]


async def test_publish_from_many_threads_is_delivered_once_in_order() -> None:
    hub = EventHub(backlog=10, queue_size=100_000)
    with hub.subscribe() as sub:

        def burst(tag: int) -> None:
            for i in range(500):
                hub.publish("thread", f"{tag}-{i}", tag=tag, i=i)

        threads = [threading.Thread(target=burst, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        hub.publish("loop", "from the loop")
        items = await drain(sub, 2001)
        for t in threads:
            t.join()
    assert [e.seq for e in items] == list(range(1, 2002))
    # Each thread's own events keep their order.
    for tag in range(4):
        mine = [e.data["i"] for e in items if isinstance(e, Event) and e.data.get("tag") == tag]
        assert mine == list(range(500))


async def test_a_slow_reader_does_not_block_publish_and_gets_one_notice() -> None:
    hub = EventHub(backlog=50, queue_size=10)
    with hub.subscribe() as slow, hub.subscribe(maxsize=10_000) as fast:
        for i in range(1000):
            hub.publish("k", str(i))  # returns although nobody reads `slow`
        assert slow.pending() == 10
        items = await drain(slow, 11)
        assert [e.seq for e in items[:10]] == list(range(1, 11))
        assert items[10] == Dropped(count=990, first_seq=11, last_seq=1000)
        assert await slow.get(wait_s=0.01) is None
        hub.publish("k", "after")
        (after,) = await drain(slow, 1)
        assert after.seq == 1001
        # Another reader lost nothing.
        assert [e.seq for e in await drain(fast, 1001)] == list(range(1, 1002))


async def test_a_gap_notice_comes_where_the_gap_is() -> None:
    hub = EventHub(queue_size=3)
    with hub.subscribe() as sub:
        for i in range(5):  # 1..3 kept, 4..5 dropped
            hub.publish("k", str(i))
        assert [e.seq for e in await drain(sub, 2)] == [1, 2]
        hub.publish("k", "6")  # room again: the notice goes in before it
        items = await drain(sub, 3)
    assert items[0].seq == 3
    assert items[1] == Dropped(count=2, first_seq=4, last_seq=5)
    assert items[2].seq == 6


async def test_closed_subscription_stops_waiting_and_leaves_the_hub() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    sub.close()
    assert await asyncio.wait_for(waiter, 5) is None
    assert hub.subscribers == 0


async def test_log_records_with_an_event_field_are_published() -> None:
    hub = EventHub()
    handler = EventLogHandler(hub)
    logger = logging.getLogger("fleetmind.tests.events")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.info("route %s: %s", "req-1", "closest", extra={"event": "route", "request_id": "req-1", "level": 3})
        logger.info("no event field here")
        logger.error("it broke", extra={"event": "tool_failed", "obj": object()})
        logger.debug("quiet", extra={"event": "workflow_step"})
    finally:
        logger.removeHandler(handler)
    route, broke, step = hub.recent()
    assert route.kind == "route" and route.message == "route req-1: closest" and route.level == "info"
    assert route.data["request_id"] == "req-1" and route.data["level"] == 3
    assert route.data["logger"] == "fleetmind.tests.events"
    assert broke.level == "error" and isinstance(broke.data["obj"], str)
    assert step.level == "debug"


def test_json_safe_cuts_large_payloads() -> None:
    assert json_safe({"a": 1, "b": [1, "x"]}) == {"a": 1, "b": [1, "x"]}
    assert json_safe({"blob": "x" * 100_000}) == {"truncated": True, "bytes": 100_012}
