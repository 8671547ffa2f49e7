"""Mission Control's newer API in-process: auth on every route, events in and out, approvals, tools, conversations."""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from fleetmind.http.auth import MISSING_OR_INVALID
from fleetmind.security import KeyStore

if TYPE_CHECKING:
    from conftest import InProcess

AUTH_ERROR = {
    "error": {
        "message": MISSING_OR_INVALID,
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


def api_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) under /api the app documents, path parameters filled with a placeholder."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/"):
            filled = re.sub(r"\{[^}]+\}", "x", path)
            found += [(method.upper(), filled) for method in operations]
    return found


async def test_every_api_route_refuses_without_a_key_and_with_a_revoked_one(
    in_process: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every route is tried three times over: past the auth throttle's burst, which would answer 429 (that throttle is
    # tested in tests/security/test_limits.py). Off for this app, read when its middleware is built on first request.
    monkeypatch.setenv("FLEETMIND_AUTH_THROTTLE_BURST", "0")
    routes = api_routes(in_process.app)
    # the routes this issue adds are among them
    paths = {p for _, p in routes}
    assert {"/api/events", "/api/approvals", "/api/approvals/x/approve", "/api/tools/x/run", "/api/tools"} <= paths
    store = KeyStore(in_process.state_dir / "keys.json")
    revoked, record = store.create("soon-gone", scope="operator")
    store.revoke(record.id)
    for headers in ({}, {"Authorization": f"Bearer {revoked}"}, {"Authorization": "Bearer fm-nope"}):
        for method, path in routes:
            resp = await in_process.client.request(method, path, headers=headers, json={"kind": "x", "message": "y"})
            assert resp.status_code == 401, (method, path, headers)
            assert resp.json() == AUTH_ERROR
            assert resp.headers["www-authenticate"] == "Bearer"
            assert revoked not in resp.text and in_process.key not in resp.text
    # The refused POST /api/events published nothing.
    assert in_process.app.state.events.recent() == [] or all(
        e.kind != "x" for e in in_process.app.state.events.recent()
    )


async def test_events_can_be_pushed_and_read_back(in_process: InProcess) -> None:
    body = {"kind": "provisioning.job", "message": "node-3 joined", "level": "warning", "data": {"node": "node-3"}}
    resp = await in_process.client.post("/api/events", headers=in_process.auth, json=body)
    assert resp.status_code == 201
    seq = resp.json()["seq"]
    got = (await in_process.client.get(f"/api/events?since={seq - 1}", headers=in_process.auth)).json()
    (event,) = [e for e in got["events"] if e["seq"] == seq]
    assert event["kind"] == "provisioning.job" and event["level"] == "warning" and event["message"] == "node-3 joined"
    assert event["data"] == {"node": "node-3", "source": "api", "by": "tests"}
    assert got["epoch"] == in_process.app.state.events.epoch


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"kind": "Bad Kind", "message": "m"}, 422, "kind"),
        ({"kind": "ok", "message": ""}, 422, "message"),
        ({"kind": "ok", "message": "m", "level": "loud"}, 422, "level"),
        ({"kind": "ok", "message": "m", "data": {"x": "y" * 20_000}}, 422, "data"),
        ({"kind": "ok", "message": "m", "data": {"x": "y" * 70_000}}, 413, None),
    ],
)
async def test_pushed_events_are_validated(in_process: InProcess, body: dict, status: int, param: str | None) -> None:
    before = in_process.app.state.events.last_seq
    resp = await in_process.client.post("/api/events", headers=in_process.auth, json=body)
    assert resp.status_code == status
    assert resp.json()["error"]["param"] == param
    bad_json = await in_process.client.post("/api/events", headers=in_process.auth, content=b"{nope")
    assert bad_json.status_code == 400
    assert in_process.app.state.events.last_seq == before


async def wait_for(predicate: Any, what: str, wait_s: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + wait_s
    while asyncio.get_running_loop().time() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_tool_needing_approval_waits_then_runs_when_approved(in_process: InProcess) -> None:
    client, auth = in_process.client, in_process.auth
    tools = (await client.get("/api/tools", headers=auth)).json()["tools"]
    assert {t["name"]: t["risk"] for t in tools} == {"echo_after_approval": "approval", "add": "safe"}
    started = await client.post("/api/tools/echo_after_approval/run", headers=auth, json={"arguments": {"text": "hi"}})
    assert started.status_code == 202 and started.json()["status"] == "running"
    run_id = started.json()["id"]

    async def pending() -> list:
        return (await client.get("/api/approvals", headers=auth)).json()["pending"]

    (waiting,) = await wait_for(pending, "the approval to be pending")
    assert waiting["tool"] == "echo_after_approval" and waiting["arguments"] == {"text": "hi"}
    assert waiting["requester"] == "tests via Mission Control" and waiting["risk"] == "approval"
    assert (await client.get(f"/api/tools/runs/{run_id}", headers=auth)).json()["status"] == "running"

    # nobody approves their own request: the key that ran the tool is refused, a second operator decides
    own = await client.post(f"/api/approvals/{waiting['id']}/approve", headers=auth, json={"note": "fine"})
    assert own.status_code == 403 and own.json()["error"]["code"] == "self_approval"
    reviewer, record = KeyStore(in_process.state_dir / "keys.json").create("reviewer", scope="operator")
    decided = await client.post(
        f"/api/approvals/{waiting['id']}/approve",
        headers={"Authorization": f"Bearer {reviewer}"},
        json={"note": "fine"},
    )
    assert decided.status_code == 200
    assert decided.json()["outcome"] == "approved" and decided.json()["by"] == f"reviewer ({record.id})"
    assert decided.json()["note"] == "fine"

    async def finished() -> dict | None:
        run = (await client.get(f"/api/tools/runs/{run_id}", headers=auth)).json()
        return run if run["status"] != "running" else None

    run = await wait_for(finished, "the run to finish")
    assert run["status"] == "ok" and run["output"] == {"echo": "hi"} and run["approval"]["outcome"] == "approved"
    listing = (await client.get("/api/approvals", headers=auth)).json()
    assert listing["pending"] == [] and listing["recent"][0]["id"] == waiting["id"]
    # Deciding it again: it no longer waits.
    again = await client.post(f"/api/approvals/{waiting['id']}/deny", headers=auth)
    assert again.status_code == 404 and again.json()["error"]["code"] == "approval_not_found"
    kinds = [e.kind for e in in_process.app.state.events.recent()]
    for kind in ("tool_run_started", "approval_requested", "approval_decided", "tool_call", "tool_run_finished"):
        assert kind in kinds


async def test_denied_tool_does_not_run(in_process: InProcess) -> None:
    client, auth = in_process.client, in_process.auth
    run_id = (
        await client.post("/api/tools/echo_after_approval/run", headers=auth, json={"arguments": {"text": "no"}})
    ).json()["id"]

    async def pending() -> list:
        return (await client.get("/api/approvals", headers=auth)).json()["pending"]

    (waiting,) = await wait_for(pending, "the approval to be pending")
    assert (await client.post(f"/api/approvals/{waiting['id']}/deny", headers=auth)).json()["outcome"] == "denied"

    async def finished() -> dict | None:
        run = (await client.get(f"/api/tools/runs/{run_id}", headers=auth)).json()
        return run if run["status"] != "running" else None

    run = await wait_for(finished, "the run to end")
    assert run["status"] == "denied" and run["output"] is None and run["approval"]["outcome"] == "denied"


async def test_safe_tool_runs_at_once_and_bad_requests_are_refused(in_process: InProcess) -> None:
    client, auth = in_process.client, in_process.auth
    run_id = (await client.post("/api/tools/add/run", headers=auth, json={"arguments": {"a": 2, "b": 3}})).json()["id"]

    async def finished() -> dict | None:
        run = (await client.get(f"/api/tools/runs/{run_id}", headers=auth)).json()
        return run if run["status"] != "running" else None

    assert (await wait_for(finished, "add"))["output"] == 5
    unknown = await client.post("/api/tools/nope/run", headers=auth, json={"arguments": {}})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_tool"
    not_object = await client.post("/api/tools/add/run", headers=auth, json={"arguments": [1, 2]})
    assert not_object.status_code == 422
    bad_args = (await client.post("/api/tools/add/run", headers=auth, json={"arguments": {"a": "x"}})).json()["id"]

    async def bad_finished() -> dict | None:
        run = (await client.get(f"/api/tools/runs/{bad_args}", headers=auth)).json()
        return run if run["status"] != "running" else None

    assert (await wait_for(bad_finished, "bad args"))["status"] == "invalid_arguments"
    runs = (await client.get("/api/tools/runs", headers=auth)).json()["runs"]
    assert [r["id"] for r in runs][:2] == [bad_args, run_id]
    assert (await client.get("/api/tools/runs/run-nope", headers=auth)).status_code == 404


async def test_chat_turns_show_in_events_and_conversations(in_process: InProcess) -> None:
    client, auth = in_process.client, in_process.auth
    body = {
        "id": "req-mc1",
        "conversation_id": "conv-mc",
        "messages": [{"role": "user", "content": "Hello there."}],
        "params": {"temperature": 0, "seed": 1, "max_tokens": 8},
        "owner": "somebody-else",  # a body cannot claim another owner's memories
    }
    resp = await in_process.chat(body)
    done = json.loads(resp.text.splitlines()[-1])
    assert done["type"] == "done"
    events = in_process.app.state.events.recent()
    turn = next(e for e in events if e.kind == "agent_turn")
    answer = next(e for e in events if e.kind == "agent_answer")
    assert turn.data["request_id"] == "req-mc1" and "Hello there." in turn.message
    caller = KeyStore(in_process.state_dir / "keys.json").records()[0]
    assert turn.data["owner"] == caller.id != "somebody-else"
    assert answer.data["expert"] == "general" and answer.data["completion_tokens"] == done["usage"]["completion_tokens"]
    listing = (await client.get("/api/conversations", headers=auth)).json()["conversations"]
    assert {"id": "conv-mc", "owner": caller.id, "messages": 2} in listing
    conv = (await client.get("/api/conversations/conv-mc", headers=auth)).json()
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["messages"][0]["content"] == "Hello there."
    assert (await client.get("/api/conversations/none", headers=auth)).status_code == 404


async def test_status_says_why_there_is_no_cluster_view(in_process: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOMAD_ADDR", "http://127.0.0.1:1")
    status = (await in_process.client.get("/api/status", headers=in_process.auth)).json()
    cluster = status["cluster"]
    assert cluster["available"] is False and cluster["orchestrator"] == "http://127.0.0.1:1"
    assert cluster["error"] and cluster["jobs"] == []


async def test_an_approval_nobody_answers_expires(in_process: InProcess) -> None:
    client, auth = in_process.client, in_process.auth
    in_process.app.state.approvals.timeout_s = 0.3  # the broker's own timeout, which settings normally set
    run_id = (
        await client.post("/api/tools/echo_after_approval/run", headers=auth, json={"arguments": {"text": "late"}})
    ).json()["id"]

    async def finished() -> dict | None:
        run = (await client.get(f"/api/tools/runs/{run_id}", headers=auth)).json()
        return run if run["status"] != "running" else None

    run = await wait_for(finished, "the approval to expire")
    assert run["status"] == "expired" and run["output"] is None
    assert run["approval"]["outcome"] == "expired" and run["approval"]["by"] is None
    listing = (await client.get("/api/approvals", headers=auth)).json()
    assert listing["pending"] == [] and listing["recent"][0]["outcome"] == "expired"
