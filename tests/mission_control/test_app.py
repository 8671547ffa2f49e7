"""Mission Control's API in-process (ASGI): auth, validation, health, status, chat and the home page."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from fleetmind.http.auth import MISSING_OR_INVALID
from fleetmind.security import hash_key

if TYPE_CHECKING:  # the fixture's type only; conftest modules are not imported by name at run time
    from conftest import InProcess

pytestmark = pytest.mark.asyncio

CHAT = {
    "messages": [{"role": "user", "content": "Hi."}],
    "params": {"temperature": 0, "seed": 1, "max_tokens": 8},
}
BAD_HEADERS = [
    {},
    {"Authorization": "Bearer fm-wrong"},
    {"Authorization": "Basic Zm9vOmJhcg=="},
    {"Authorization": "Bearer"},
]


def assert_auth_error(body: dict, key: str) -> None:
    assert body == {
        "error": {
            "message": MISSING_OR_INVALID,
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert key not in json.dumps(body)


@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_protected_routes_answer_401_without_a_valid_key(in_process: InProcess, headers: dict) -> None:
    for method, path in (("GET", "/api/status"), ("POST", "/api/agent/chat")):
        resp = await in_process.client.request(method, path, headers=headers, json=CHAT)
        assert resp.status_code == 401, path
        assert resp.headers["www-authenticate"] == "Bearer"
        assert_auth_error(resp.json(), in_process.key)


async def test_auth_comes_before_body_validation(in_process: InProcess) -> None:
    resp = await in_process.client.post("/api/agent/chat", content=b"{not json")
    assert resp.status_code == 401


async def test_a_key_from_the_environment(in_process: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETMIND_API_KEYS", hash_key("fm-from-env"))
    resp = await in_process.client.get("/api/status", headers={"Authorization": "Bearer fm-from-env"})
    assert resp.status_code == 200


async def test_health_follows_the_pipeline(in_process: InProcess) -> None:
    assert (await in_process.client.get("/health")).json() == {"status": "ok"}
    await in_process.runtime.stop()
    resp = await in_process.client.get("/health")
    assert resp.status_code == 503 and resp.json() == {"status": "starting"}
    chat = await in_process.chat(CHAT)
    assert chat.status_code == 503 and chat.json()["error"]["code"] == "unavailable"


async def test_chat_streams_ndjson_events(in_process: InProcess) -> None:
    resp = await in_process.chat({**CHAT, "id": "req-t1"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in resp.text.splitlines()]
    assert [e["type"] for e in events[:-1]] == ["delta"] * (len(events) - 1)
    assert events[-1]["type"] == "done" and events[-1]["id"] == "req-t1"
    assert events[-1]["usage"]["completion_tokens"] > 0 and events[-1]["expert"] == "general"


async def test_bad_bodies_are_400_or_422(in_process: InProcess) -> None:
    bad_json = await in_process.chat(content=b"{not json")
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["code"] == "invalid_json"
    no_messages = await in_process.chat({"messages": []})
    assert no_messages.status_code == 422
    assert no_messages.json()["error"]["param"] == "messages"
    bad_role = {"messages": [{"role": "wizard", "content": "x"}]}
    resp = await in_process.chat(bad_role)
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "messages[0].role"


async def test_status_reports_experts_and_requests(in_process: InProcess) -> None:
    await in_process.chat({**CHAT, "id": "req-s1"})
    await in_process.chat({**CHAT, "model": "nope"})
    status = (await in_process.client.get("/api/status", headers=in_process.auth)).json()
    assert status["running"] is True and status["uptime_s"] >= 0
    assert status["experts_from"] == "env"
    (expert,) = status["experts"]
    assert expert["name"] == "general" and expert["healthy"] is True and expert["served"] == 1
    assert status["requests"]["served"] == 1 and status["requests"]["failed"] == 1
    assert status["requests"]["errors"] == {"model_not_found": 1}
    assert status["requests"]["by_expert"] == {"general": 1}
    assert [r["outcome"] for r in status["recent"]] == ["model_not_found", "done"]
    assert status["recent"][1] | {"at": 0} == {
        "id": "req-s1",
        "outcome": "done",
        "expert": "general",
        "at": 0,
        "completion_tokens": status["recent"][1]["completion_tokens"],
    }


async def test_home_page_says_what_it_is(in_process: InProcess) -> None:
    page = await in_process.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "fleetmind agent" in page.text and "/api/status" in page.text
    # everything from this origin only, nothing inline (no script-src: scripts fall back to default-src), no framing
    directives = dict(d.strip().partition(" ")[::2] for d in page.headers["content-security-policy"].split(";"))
    assert directives == {
        "default-src": "'self'",
        "connect-src": "'self'",
        "style-src": "'self'",
        "frame-ancestors": "'none'",
    }
    for asset, needle in (
        ("/static/mc-core.js", "/api/ws/events"),
        ("/static/mc-panels.js", "/api/approvals"),
        ("/static/mc.css", "#chat-log"),
    ):
        resp = await in_process.client.get(asset)
        assert resp.status_code == 200 and needle in resp.text, asset
    # Nothing on the page loads from elsewhere (no CDN): every src/href is local.
    assert "http://" not in page.text and "https://" not in page.text
