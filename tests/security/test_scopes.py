"""Issue 14, "every key is an admin": each attack replayed against Mission Control, and the legitimate path.

- a chat key (what an OpenAI client program holds) cannot use Mission Control;
- an operator cannot approve its own ``shell`` request, and the command never runs; another operator can, and so
  can the same person with the request's one-time code, which only the machine's user can read;
- key A cannot read, export or replace key B's conversations or memories; an admin can;
- deep or malformed JSON to state load is a 400, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio
from starlette.testclient import TestClient

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.apps.agent_process import create_app, detach_logging
from fleetmind.config import Settings
from fleetmind.memory.long_term import LongTermMemory
from fleetmind.security import KeyStore
from fleetmind.tools.approvals import MAX_CODE_TRIES, ApprovalBroker
from fleetmind.tools.runner import build_runner

pytestmark = pytest.mark.asyncio

DIM = 4


@dataclass
class Keys:
    chat: str
    alice: str  # operator
    bob: str  # operator
    admin: str
    ids: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, who)}"}


@dataclass
class MissionControl:
    client: httpx.AsyncClient
    runtime: AgentRuntime
    keys: Keys
    state_dir: Path
    app: Any


@pytest_asyncio.fixture
async def mc(tmp_path: Path, llama_server_url: str) -> AsyncIterator[MissionControl]:
    store = KeyStore(tmp_path / "keys.json")
    made = {
        "chat": store.create("client-program", scope="chat"),
        "alice": store.create("alice", scope="operator"),
        "bob": store.create("bob", scope="operator"),
        "admin": store.create("owner", scope="admin"),
    }
    keys = Keys(**{who: key for who, (key, _) in made.items()}, ids={who: r.id for who, (_, r) in made.items()})
    runtime = AgentRuntime(settings=AgentSettings(experts=f"general={llama_server_url}"))
    # the real built-in tools, shell included, with the real approval gate
    runner = build_runner(state_dir=tmp_path / "tools", approvals=ApprovalBroker(timeout_s=60))
    app = create_app(Settings(state_dir=tmp_path), runtime, tools=runner)
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            yield MissionControl(client, runtime, keys, tmp_path, app)
    finally:
        await app.state.tool_runs.aclose()
        await runtime.stop()
        detach_logging(app)


# -- a chat key is not an operator ------------------------------------------------------------------------------


MISSION_CONTROL = [
    ("GET", "/api/status", None),
    ("GET", "/api/approvals", None),
    ("POST", "/api/approvals/apr-000000000000/approve", {}),
    ("GET", "/api/tools", None),
    ("POST", "/api/tools/shell/run", {"arguments": {"command": "id"}}),
    ("GET", "/api/tools/runs", None),
    ("GET", "/api/events", None),
    ("POST", "/api/events", {"kind": "x", "message": "hello"}),
    ("GET", "/api/conversations", None),
    ("POST", "/api/state/save", None),
    ("POST", "/api/state/load", {}),
]


async def test_a_chat_key_cannot_use_mission_control(mc: MissionControl) -> None:
    for method, path, body in MISSION_CONTROL:
        r = await mc.client.request(method, path, json=body, headers=mc.keys.auth("chat"))
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "insufficient_scope"
    assert not (mc.state_dir / "tools" / "workspace").exists() or not any(
        (mc.state_dir / "tools" / "workspace").iterdir()
    )
    # the legitimate paths: an operator may, and the chat key may chat
    assert (await mc.client.get("/api/status", headers=mc.keys.auth("alice"))).status_code == 200
    chat = await mc.client.post(
        "/api/agent/chat",
        headers=mc.keys.auth("chat"),
        json={"messages": [{"role": "user", "content": "hi"}], "params": {"max_tokens": 4}},
    )
    assert chat.status_code == 200 and '"done"' in chat.text


async def test_a_chat_key_cannot_open_the_event_stream(mc: MissionControl) -> None:
    def connect(who: str) -> dict[str, Any]:
        protocols = ["fleetmind.events.v1", "fleetmind.key." + getattr(mc.keys, who)]
        with TestClient(mc.app).websocket_connect("/api/ws/events", subprotocols=protocols) as ws:
            first: dict[str, Any] = ws.receive()
            return first

    refused = await asyncio.to_thread(connect, "chat")
    assert refused["type"] == "websocket.close" and refused["code"] == 4401
    hello = await asyncio.to_thread(connect, "alice")
    assert hello["type"] == "websocket.send" and json.loads(hello["text"])["type"] == "hello"


async def test_a_chat_key_cannot_steer_provisioning(tmp_path: Path) -> None:
    from tests.provisioning.conftest import make_settings, start_api

    store = KeyStore(tmp_path / "keys.json")
    chat, _ = store.create("client-program")
    operator, _ = store.create("ops", scope="operator")
    async for api in start_api(make_settings(tmp_path), store, operator):
        for path in ("/api/provisioning/status", "/api/provisioning/nodes"):
            refused = await api.client.get(path, headers={"Authorization": f"Bearer {chat}"})
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
            assert (await api.client.get(path, headers=api.key_headers)).status_code == 200


# -- nobody approves their own request --------------------------------------------------------------------------


async def _start_shell(mc: MissionControl, who: str, marker: str) -> tuple[str, str]:
    """Run ``shell`` as ``who``; (run id, approval id) once the call waits for a person."""
    r = await mc.client.post(
        "/api/tools/shell/run", headers=mc.keys.auth(who), json={"arguments": {"command": f"echo ran > {marker}"}}
    )
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    for _ in range(200):
        pending = (await mc.client.get("/api/approvals", headers=mc.keys.auth(who))).json()["pending"]
        if pending:
            assert pending[0]["tool"] == "shell" and pending[0]["requester_key"] == mc.keys.ids[who]
            return run_id, pending[0]["id"]
        await asyncio.sleep(0.02)
    raise AssertionError("the shell call never waited for approval")


async def _finished(mc: MissionControl, run_id: str) -> dict[str, Any]:
    for _ in range(500):
        run: dict[str, Any] = (await mc.client.get(f"/api/tools/runs/{run_id}", headers=mc.keys.auth("bob"))).json()
        if run["status"] != "running":
            return run
        await asyncio.sleep(0.02)
    raise AssertionError("the run did not finish")


def _ran(mc: MissionControl, marker: str) -> bool:
    return any(mc.state_dir.rglob(marker))


async def test_an_operator_cannot_approve_its_own_shell_request(mc: MissionControl) -> None:
    run_id, approval = await _start_shell(mc, "alice", "self-approved.txt")
    r = await mc.client.post(f"/api/approvals/{approval}/approve", headers=mc.keys.auth("alice"), json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "self_approval"
    assert "fleetmind approvals code" in r.json()["error"]["message"]
    # an admin key of one's own is no way round it either: the request is alice's, the decision must be another's
    wrong = await mc.client.post(
        f"/api/approvals/{approval}/approve", headers=mc.keys.auth("alice"), json={"code": "AAAAAAAA"}
    )
    assert wrong.status_code == 403
    await asyncio.sleep(0.2)
    assert not _ran(mc, "self-approved.txt")
    status = (await mc.client.get(f"/api/tools/runs/{run_id}", headers=mc.keys.auth("alice"))).json()["status"]
    assert status == "running"  # still waiting for someone else

    # the legitimate path: a second operator approves, and only then does it run
    ok = await mc.client.post(f"/api/approvals/{approval}/approve", headers=mc.keys.auth("bob"), json={})
    assert ok.status_code == 200 and ok.json()["outcome"] == "approved" and mc.keys.ids["bob"] in ok.json()["by"]
    run = await _finished(mc, run_id)
    assert run["status"] == "ok", run
    assert _ran(mc, "self-approved.txt")


async def test_the_one_time_code_lets_the_person_at_the_machine_approve_their_own(mc: MissionControl) -> None:
    run_id, approval = await _start_shell(mc, "alice", "with-code.txt")
    code_file = mc.state_dir / "approvals" / f"{approval}.code"
    assert code_file.stat().st_mode & 0o777 == 0o600 and code_file.parent.stat().st_mode & 0o777 == 0o700
    # the second factor as a person uses it: the CLI on the machine, as the stack's user
    env = {**os.environ, "FLEETMIND_STATE_DIR": str(mc.state_dir)}
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fleetmind", "approvals", "code", approval],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    code = cli.stdout.strip()
    r = await mc.client.post(
        f"/api/approvals/{approval}/approve", headers=mc.keys.auth("alice"), json={"code": code.lower()}
    )
    assert r.status_code == 200, r.text
    assert "one-time code" in r.json()["note"]
    assert (await _finished(mc, run_id))["status"] == "ok" and _ran(mc, "with-code.txt")
    assert not code_file.exists()  # used once, then gone


async def test_guessing_the_code_burns_it(mc: MissionControl) -> None:
    run_id, approval = await _start_shell(mc, "alice", "guessed.txt")
    code = (mc.state_dir / "approvals" / f"{approval}.code").read_text().strip()
    for _ in range(MAX_CODE_TRIES):
        r = await mc.client.post(
            f"/api/approvals/{approval}/approve", headers=mc.keys.auth("alice"), json={"code": "WRONG000"}
        )
        assert r.status_code == 403
    late = await mc.client.post(
        f"/api/approvals/{approval}/approve", headers=mc.keys.auth("alice"), json={"code": code}
    )
    assert late.status_code == 403 and "used up" in late.json()["error"]["message"]
    # denying one's own request is always allowed
    deny = await mc.client.post(f"/api/approvals/{approval}/deny", headers=mc.keys.auth("alice"), json={})
    assert deny.status_code == 200
    assert (await _finished(mc, run_id))["status"] == "denied" and not _ran(mc, "guessed.txt")


async def test_the_agent_cannot_be_talked_into_approving_for_the_chat_owner(tmp_path: Path) -> None:
    """The agent's own tool calls carry the chat's owner: that key cannot approve them either."""
    from fleetmind.tools.approvals import acting_for

    broker = ApprovalBroker(timeout_s=5, codes_dir=tmp_path / "approvals")
    token = acting_for.set("key_alice")
    try:
        waiting = asyncio.create_task(broker.request(tool="shell", arguments={}, risk="approval", requester="agent:c1"))
    finally:
        acting_for.reset(token)
    await asyncio.sleep(0.05)
    (pending,) = broker.pending()
    assert pending.requester_key == "key_alice"
    from fleetmind.tools.errors import SelfApprovalError

    with pytest.raises(SelfApprovalError):
        broker.decide(pending.id, approve=True, by="alice", by_key="key_alice")
    broker.decide(pending.id, approve=True, by="bob", by_key="key_bob")
    assert (await waiting).approved


# -- tenants ----------------------------------------------------------------------------------------------------


async def _chat(mc: MissionControl, who: str, text: str, conversation: str) -> None:
    r = await mc.client.post(
        "/api/agent/chat",
        headers=mc.keys.auth(who),
        json={
            "messages": [{"role": "user", "content": text}],
            "conversation_id": conversation,
            "params": {"max_tokens": 4},
        },
    )
    assert r.status_code == 200 and '"done"' in r.text, r.text


def _state(conversations: list[dict[str, Any]], texts: list[str], owner: str | None) -> bytes:
    vectors = np.eye(DIM, dtype="<f4")[: len(texts)]
    return json.dumps(
        {
            "format": "fleetmind-agent-state",
            "version": 2,
            "conversations": conversations,
            "memory": {
                "dim": DIM,
                "records": [{"text": t, "owner": owner, "conversation_id": None} for t in texts],
                "vectors": base64.b64encode(vectors.tobytes()).decode(),
            },
            "settings": {"request_timeout_s": 1.0},
        }
    ).encode()


async def test_key_a_cannot_read_export_or_replace_key_b_s_conversations_and_memories(mc: MissionControl) -> None:
    alice, bob = mc.keys.ids["alice"], mc.keys.ids["bob"]
    memory = LongTermMemory(mc.state_dir / "memory", None, dim=DIM, kind="flat")
    mc.runtime.memory = memory
    memory.add_vectors(np.eye(DIM, dtype=np.float32)[:1], ["alice's secret"], owner=alice)
    memory.add_vectors(np.eye(DIM, dtype=np.float32)[1:2], ["bob's note"], owner=bob)
    await _chat(mc, "alice", "my password is hunter2", "shared-id")

    # read: bob does not see alice's conversation, even by its id, nor continue it
    listed = (await mc.client.get("/api/conversations", headers=mc.keys.auth("bob"))).json()["conversations"]
    assert listed == []
    assert (await mc.client.get("/api/conversations/shared-id", headers=mc.keys.auth("bob"))).status_code == 404
    other = await mc.client.get(f"/api/conversations?owner={alice}", headers=mc.keys.auth("bob"))
    assert other.status_code == 403
    await _chat(mc, "bob", "what did the last person say?", "shared-id")
    bobs = (await mc.client.get("/api/conversations/shared-id", headers=mc.keys.auth("bob"))).json()["messages"]
    assert "hunter2" not in json.dumps(bobs)

    # export: bob's state holds bob's things only, and no settings
    exported = (await mc.client.post("/api/state/save", headers=mc.keys.auth("bob"))).content
    assert b"hunter2" not in exported and b"alice's secret" not in exported and b"bob's note" in exported
    assert json.loads(exported)["settings"] == {}

    # replace: a file that claims to be alice's lands as bob's; alice's things stay as they were
    hostile = _state(
        [{"id": "shared-id", "owner": alice, "messages": [{"role": "user", "content": "planted"}]}],
        ["planted memory"],
        alice,
    )
    loaded = await mc.client.post("/api/state/load", headers=mc.keys.auth("bob"), content=hostile)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["memories"] == 1  # bob's count, not everyone's
    alices = (await mc.client.get("/api/conversations/shared-id", headers=mc.keys.auth("alice"))).json()
    assert "hunter2" in json.dumps(alices) and "planted" not in json.dumps(alices)
    records, _ = memory.dump()
    assert {(r["text"], r["owner"]) for r in records} == {("alice's secret", alice), ("planted memory", bob)}
    assert mc.runtime.settings.request_timeout_s != 1.0  # an operator's file does not change everyone's settings

    # the admin sees and saves everything, and can look at anyone's conversation
    everything = (await mc.client.post("/api/state/save", headers=mc.keys.auth("admin"))).content
    assert b"hunter2" in everything and b"planted" in everything
    seen = await mc.client.get(f"/api/conversations/shared-id?owner={alice}", headers=mc.keys.auth("admin"))
    assert seen.status_code == 200 and "hunter2" in seen.text


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"format": "fleetmind-agent-state", "version": 2, "conversations": "x"}).encode(),
        b'{"format": "fleetmind-agent-state", "version": 2, "conversations": [{"id": "c", "messages": '
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}]}",
        json.dumps(
            {"format": "fleetmind-agent-state", "version": 2, "memory": {"dim": 384, "records": [], "vectors": 5}}
        ).encode(),
        json.dumps({"format": "fleetmind-agent-state", "version": 1, "conversations": {"c": [{"role": 5}]}}).encode(),
        b"\xff\xfe not utf-8",
    ],
    ids=["deep-array", "wrong-type", "deep-messages", "bad-memory", "bad-message", "not-utf8"],
)
async def test_malformed_or_deep_state_is_a_400_and_changes_nothing(mc: MissionControl, body: bytes) -> None:
    await _chat(mc, "alice", "keep me", "kept")
    for who in ("alice", "admin"):
        r = await mc.client.post("/api/state/load", headers=mc.keys.auth(who), content=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_state"
    kept = await mc.client.get("/api/conversations/kept", headers=mc.keys.auth("alice"))
    assert kept.status_code == 200 and "keep me" in kept.text
