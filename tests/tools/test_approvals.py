"""The approval broker: approve, deny, expire, cancel, decisions from another thread, events and history."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from fleetmind.tools.approvals import ApprovalBroker, ApprovalNotFoundError


async def wait_pending(broker: ApprovalBroker, n: int = 1) -> None:
    for _ in range(500):
        if len(broker.pending()) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no pending approval appeared")


async def test_approve_and_deny_with_events_and_history() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    broker = ApprovalBroker(on_event=lambda kind, payload: events.append((kind, payload)))
    task = asyncio.create_task(
        broker.request(tool="shell", arguments={"command": "ls"}, risk="approval", requester="agent:c1", reason="why")
    )
    await wait_pending(broker)
    [pending] = broker.pending()
    assert (pending.tool, pending.arguments, pending.requester, pending.reason) == (
        "shell",
        {"command": "ls"},
        "agent:c1",
        "why",
    )
    assert pending.expires_at > pending.created_at
    decision = broker.decide(pending.id, approve=True, by="alice", note="fine")
    assert (await task) == decision
    assert (decision.outcome, decision.by, decision.note, decision.tool) == ("approved", "alice", "fine", "shell")
    assert broker.pending() == []
    with pytest.raises(ApprovalNotFoundError):
        broker.decide(pending.id, approve=False, by="bob")

    task = asyncio.create_task(broker.request(tool="shell", arguments={}, risk="approval", requester="cli"))
    await wait_pending(broker)
    denied = broker.decide(broker.pending()[0].id, approve=False, by="bob")
    assert (await task).outcome == "denied" and denied.by == "bob"
    assert [d.outcome for d in broker.recent()] == ["denied", "approved"]
    assert [k for k, _ in events] == ["approval_requested", "approval_decided"] * 2
    assert events[1][1]["outcome"] == "approved" and events[1][1]["requester"] == "agent:c1"


async def test_no_decision_expires() -> None:
    broker = ApprovalBroker(timeout_s=30)
    decision = await broker.request(tool="x", arguments={}, risk="approval", requester="r", timeout_s=0.05)
    assert decision.outcome == "expired" and decision.by is None
    assert broker.pending() == [] and broker.recent(1) == [decision]


async def test_cancelled_waiter_is_recorded_and_cancellation_propagates() -> None:
    broker = ApprovalBroker()
    task = asyncio.create_task(broker.request(tool="x", arguments={}, risk="approval", requester="r"))
    await wait_pending(broker)
    approval_id = broker.pending()[0].id
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert broker.pending() == []
    assert broker.recent(1)[0].outcome == "cancelled"
    with pytest.raises(ApprovalNotFoundError):
        broker.decide(approval_id, approve=True, by="late")


async def test_decide_from_another_thread() -> None:
    broker = ApprovalBroker()
    task = asyncio.create_task(broker.request(tool="x", arguments={"a": 1}, risk="approval", requester="r"))
    await wait_pending(broker)
    approval_id = broker.pending()[0].id
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(broker.decide(approval_id, approve=True, by="ops")))
    thread.start()
    decision = await asyncio.wait_for(task, 10)
    thread.join()
    assert decision.outcome == "approved" and result == [decision]


def test_bad_arguments_are_rejected_early() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        ApprovalBroker(timeout_s=0)
    with pytest.raises(ApprovalNotFoundError):
        ApprovalBroker().decide("apr-nope", approve=True, by="x")
    with pytest.raises(ValueError, match="by="):
        ApprovalBroker().decide("apr-nope", approve=True, by=" ")
