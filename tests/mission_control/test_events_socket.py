"""The live event WebSocket over a real socket: auth and refusal, resume by seq, a steady stream, a slow reader."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fleetmind.security import KeyStore

if TYPE_CHECKING:
    from conftest import Served


def by_header(key: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {key}"}}


def by_protocol(key: str) -> dict[str, Any]:
    return {"subprotocols": ["fleetmind.events.v1", f"fleetmind.key.{key}"]}


async def recv(ws: ClientConnection, wait_s: float = 10) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
    return loaded


async def assert_refused(url: str, **kwargs: Any) -> None:
    async with connect(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)  # the first thing that arrives is the close: nothing leaks
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_refused_without_a_key_with_a_bad_one_and_with_a_revoked_one(served: Served) -> None:
    served.app.state.events.publish("secret_looking", "something the page would show")
    await assert_refused(served.ws_url)
    await assert_refused(served.ws_url, **by_header("fm-wrong"))
    await assert_refused(served.ws_url, **by_protocol("fm-wrong"))
    await assert_refused(served.ws_url, subprotocols=["fleetmind.events.v1"])
    key, record = KeyStore(served.state_dir / "keys.json").create("short-lived", scope="operator")
    async with connect(served.ws_url, **by_header(key)) as ws:
        assert (await recv(ws))["type"] == "hello"
    KeyStore(served.state_dir / "keys.json").revoke(record.id)
    await assert_refused(served.ws_url, **by_header(key))
    await assert_refused(served.ws_url, **by_protocol(key))


async def test_a_plain_http_request_to_the_socket_is_refused(served: Served) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        resp = await client.get(served.url + "/api/ws/events")
    assert resp.status_code in (400, 403, 404, 426) and "secret" not in resp.text


async def test_key_by_subprotocol_gets_hello_then_the_backlog(served: Served) -> None:
    hub = served.app.state.events
    first = hub.publish("test", "before the page opened", n=1)
    async with connect(served.ws_url, **by_protocol(served.key)) as ws:
        assert ws.subprotocol == "fleetmind.events.v1"  # the key is never echoed back
        hello = await recv(ws)
        assert hello["type"] == "hello" and hello["epoch"] == hub.epoch and hello["last_seq"] >= first.seq
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["seq"] < first.seq:
            seen.append(await recv(ws))
        assert seen[-1] == {
            "type": "event",
            "seq": first.seq,
            "ts": first.ts,
            "kind": "test",
            "level": "info",
            "message": "before the page opened",
            "data": {"n": 1},
        }
        assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)


async def test_reconnect_resumes_after_the_last_seq(served: Served) -> None:
    hub = served.app.state.events
    url = served.ws_url
    async with connect(url, **by_header(served.key)) as ws:
        hello = await recv(ws)
        marker = hub.publish("test", "one")
        while (await recv(ws))["seq"] < marker.seq:
            pass
    missed = [hub.publish("test", f"while away {i}") for i in range(5)]
    async with connect(f"{url}?since={marker.seq}&epoch={hello['epoch']}", **by_header(served.key)) as ws:
        assert (await recv(ws))["type"] == "hello"
        got = [await recv(ws) for _ in missed]
    assert [e["seq"] for e in got] == [e.seq for e in missed]
    # From another hub's epoch (the agent restarted): the whole backlog again.
    async with connect(f"{url}?since={marker.seq}&epoch=other", **by_header(served.key)) as ws:
        await recv(ws)
        assert (await recv(ws))["seq"] == hub.recent()[0].seq


async def test_a_key_revoked_while_connected_closes_the_stream(served: Served) -> None:
    key, record = KeyStore(served.state_dir / "keys.json").create("revoke-me", scope="operator")
    async with connect(served.ws_url, **by_header(key)) as ws:
        await recv(ws)
        KeyStore(served.state_dir / "keys.json").revoke(record.id)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def publish_steadily(hub: Any, rate: int, seconds: float, stop: threading.Event) -> list[int]:
    """``rate`` events per second for ``seconds``, paced against the clock (not sleep drift)."""
    seqs = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        if stop.is_set():
            break
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        seqs.append(hub.publish("load", f"event {i}", level="debug", i=i, pad="x" * 64).seq)
    return seqs


async def test_200_events_a_second_for_30_seconds_arrive_complete_and_in_order(served: Served) -> None:
    hub = served.app.state.events
    async with connect(served.ws_url, **by_header(served.key)) as ws:
        hello = await recv(ws)
        base = hello["last_seq"]
        stop = threading.Event()
        result: list[int] = []
        publisher = threading.Thread(
            target=lambda: result.extend(publish_steadily(hub, 200, 30, stop)), name="publisher"
        )
        publisher.start()
        try:
            received: list[int] = []
            while len(received) < 6000:
                msg = await recv(ws, wait_s=30)
                assert msg["type"] == "event", msg  # a dropped notice would mean a loss
                if msg["seq"] > base:
                    received.append(msg["seq"])
        finally:
            stop.set()
            publisher.join()
    assert result == list(range(base + 1, base + 6001))
    assert received == result  # none lost, none repeated, none reordered


@pytest.mark.parametrize("served", [50], indirect=True)
async def test_a_slow_reader_does_not_hold_up_publish_and_is_told_what_it_missed(served: Served) -> None:
    hub = served.app.state.events
    total = 20_000
    async with connect(served.ws_url, max_queue=1, **by_header(served.key)) as ws:
        hello = await recv(ws)
        base = hello["last_seq"]
        # The client reads nothing now; the server's socket buffers fill, then the reader's queue (50).
        for i in range(total):
            hub.publish("flood", f"event {i}", i=i, pad="y" * 1000)
        last = base + total
        got: list[int] = []
        notices: list[dict[str, Any]] = []
        while not got or got[-1] < last:
            msg = await recv(ws, wait_s=30)
            if msg["type"] == "dropped":
                notices.append(msg)
                got.extend(range(msg["first_seq"], msg["last_seq"] + 1))
            elif msg["seq"] > base:
                got.append(msg["seq"])
    assert notices, "the reader was never told it fell behind"
    assert all(n["reason"] == "slow_reader" and n["count"] == n["last_seq"] - n["first_seq"] + 1 for n in notices)
    # Every event is either delivered or named in a notice, exactly once and in order.
    assert got == list(range(base + 1, last + 1))
    assert sum(n["count"] for n in notices) > 0 and len(got) - sum(n["count"] for n in notices) < total


async def test_invalid_handshake_is_not_a_crash(served: Served) -> None:
    with pytest.raises(InvalidStatus):
        async with connect(served.url.replace("http://", "ws://") + "/api/ws/nope", **by_header(served.key)):
            pass
