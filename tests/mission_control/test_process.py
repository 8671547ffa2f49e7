"""The agent process (``python -m fleetmind.apps.agent_process``) on a real socket: auth, streaming, shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import TYPE_CHECKING

import httpx
from agent_testkit import DETERMINISTIC, direct_completion

if TYPE_CHECKING:
    from conftest import AgentProcess

PROMPT = "What is a fleet?"


def chat_body(**extra: object) -> dict[str, object]:
    return {
        "messages": [{"role": "user", "content": PROMPT}],
        "params": DETERMINISTIC.model_dump(exclude_none=True),
        **extra,
    }


def post_chat(agent: AgentProcess, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(agent.url + "/api/agent/chat", headers=agent.auth, json=body, timeout=60, **kwargs)


def cancelled(agent: AgentProcess) -> int:
    return int(status(agent)["requests"]["errors"].get("cancelled", 0))


def status(agent: AgentProcess) -> dict:
    resp = httpx.get(agent.url + "/api/status", headers=agent.auth, timeout=10)
    assert resp.status_code == 200
    return resp.json()


def test_health_needs_no_key(agent_process: AgentProcess) -> None:
    resp = httpx.get(agent_process.url + "/health", timeout=10)
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


def test_401_without_or_with_a_wrong_key(agent_process: AgentProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer fm-not-a-key"}):
        for method, path in (("GET", "/api/status"), ("POST", "/api/agent/chat")):
            url = agent_process.url + path
            resp = httpx.request(method, url, headers=headers, json=chat_body(), timeout=10)
            assert resp.status_code == 401
            assert resp.json()["error"]["code"] == "invalid_api_key"
            assert agent_process.key not in resp.text


def test_chat_streams_ndjson_line_by_line(agent_process: AgentProcess, llama_server_url: str) -> None:
    lines = []
    url = agent_process.url + "/api/agent/chat"
    with httpx.stream("POST", url, headers=agent_process.auth, json=chat_body(), timeout=60) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        for line in resp.iter_lines():
            if line:
                lines.append(json.loads(line))
    *deltas, done = lines
    assert deltas and {d["type"] for d in deltas} == {"delta"}
    assert done["type"] == "done" and done["expert"] == "general"
    expected, usage = direct_completion(llama_server_url, PROMPT)
    assert "".join(d["text"] for d in deltas) == expected
    assert done["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert done["usage"]["completion_tokens"] == usage["completion_tokens"]


def test_malformed_json_is_400_and_the_server_keeps_serving(agent_process: AgentProcess) -> None:
    url = agent_process.url + "/api/agent/chat"
    bad = httpx.post(url, headers=agent_process.auth, content=b'{"messages": [', timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    wrong = httpx.post(url, headers=agent_process.auth, json={"messages": "hi"}, timeout=10)
    assert wrong.status_code == 422
    good = post_chat(agent_process, chat_body())
    assert good.status_code == 200
    assert json.loads(good.text.splitlines()[-1])["type"] == "done"


def test_a_client_that_goes_away_cancels_its_request(agent_process: AgentProcess) -> None:
    before = cancelled(agent_process)
    body = json.dumps(chat_body(model="hung", id="req-gone")).encode()
    host, port = agent_process.url.removeprefix("http://").split(":")
    head = (
        f"POST /api/agent/chat HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {agent_process.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        # Wait until the expert holds the request (a cancel racing the connect is not what this tests).
        assert agent_process.hung.got_request.wait(10)
    # The agent noticed the closed connection and gave up the expert call.
    assert agent_process.hung.closed_by_client.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and cancelled(agent_process) == before:
        time.sleep(0.1)
    after = status(agent_process)
    assert after["requests"]["errors"].get("cancelled", 0) == before + 1
    assert after["requests"]["in_flight"] == 0
    assert any(r["id"] == "req-gone" and r["outcome"] == "cancelled" for r in after["recent"])


def test_status_shows_experts_and_answers(agent_process: AgentProcess) -> None:
    post_chat(agent_process, chat_body())
    body = status(agent_process)
    assert body["service"] == "fleetmind-agent" and body["running"] is True
    experts = {e["name"]: e for e in body["experts"]}
    assert set(experts) == {"general", "hung"}
    assert experts["general"]["healthy"] is True and experts["general"]["served"] >= 1
    assert body["requests"]["by_expert"]["general"] >= 1
    assert body["recent"][0]["expert"] == "general"


def test_sigterm_shuts_down_cleanly(agent_process: AgentProcess) -> None:
    # Runs last in this module: it ends the shared process.
    os.killpg(agent_process.proc.pid, signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells what ended it.
    assert agent_process.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    lines = agent_process.log.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    events = [r.get("event") for r in records]
    assert "pipeline_started" in events and "pipeline_stopped" in events
    assert "route" in events
    assert any(r["msg"] == "Application shutdown complete." for r in records)
    assert not [r for r in records if r["level"] in ("error", "critical")]
