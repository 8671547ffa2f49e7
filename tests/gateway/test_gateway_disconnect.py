"""A client that walks away mid-answer: the gateway closes its request to the agent, and the agent cancels.

These need an answer that takes a while to produce, so they run on the packaged SmolLM2 (marked slow). The
agent's ``/api/status`` names each finished request by the id the gateway gave it (``req-`` + the completion's
hex), so the test can see what became of exactly the request it abandoned.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fleetmind.gateway.app import create_app
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.security import KeyStore
from tests.gateway.gateway_helpers import FakeRegistry, Stack

pytestmark = pytest.mark.slow

LONG: dict[str, Any] = {
    "model": "fleetmind",
    "messages": [{"role": "user", "content": "Write a very long story about a dragon who learns to cook."}],
    "max_tokens": 1500,
    "temperature": 0,
    "seed": 7,
}


def outcome(stack: Stack, request_id: str, timeout: float = 60.0) -> str:
    """How the agent says ``request_id`` ended, once it has."""
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(stack.agent_url + "/api/status", headers=headers, timeout=10).json()
        for answer in status["recent"]:
            if answer["id"] == request_id:
                return str(answer["outcome"])
        time.sleep(0.2)
    raise AssertionError(f"the agent never finished {request_id}")


def test_disconnect_mid_stream_cancels_the_agent_request(slow_stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {slow_stack.api_key}"}
    url = slow_stack.gateway_url + "/v1/chat/completions"
    with httpx.stream("POST", url, json={**LONG, "stream": True}, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line)
        completion_id = json.loads(first.removeprefix("data: "))["id"]
    # leaving the block closed the connection after one chunk of a long answer
    assert outcome(slow_stack, "req-" + completion_id.removeprefix("chatcmpl-")) == "cancelled"
    # and the gateway carries on serving
    done = httpx.post(url, json={**LONG, "max_tokens": 8}, headers=headers, timeout=60)
    assert done.status_code == 200 and done.json()["usage"]["completion_tokens"] > 0


def test_disconnect_while_waiting_cancels_the_agent_request(slow_stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {slow_stack.api_key}"}
    url = slow_stack.gateway_url + "/v1/chat/completions"
    status = httpx.get(slow_stack.agent_url + "/api/status", headers=headers).json()
    before = {a["id"] for a in status["recent"]}
    with pytest.raises(httpx.ReadTimeout):
        # a client that gives up on a non-streamed answer long before it is ready
        httpx.post(url, json=LONG, headers=headers, timeout=httpx.Timeout(60, read=1.0))
    deadline = time.monotonic() + 60
    new: list[dict[str, Any]] = []
    while not new and time.monotonic() < deadline:
        recent = httpx.get(slow_stack.agent_url + "/api/status", headers=headers).json()["recent"]
        new = [a for a in recent if a["id"] not in before]
        time.sleep(0.2)
    assert [a["outcome"] for a in new] == ["cancelled"]


@pytest.mark.anyio
async def test_timeout_after_the_stream_began_is_an_error_chunk_then_done(slow_stack: Stack) -> None:
    """Once 200 and some text are out, a failure can only travel in the stream: an error, then [DONE]."""
    # long enough for the first words, far too short for the whole story
    settings = GatewaySettings(agent_url=slow_stack.agent_url, request_timeout_s=3)
    key_store = KeyStore(slow_stack.gateway_log.parent / "state" / "keys.json")
    app: FastAPI = create_app(settings, key_store=key_store, registry=FakeRegistry(down=True))
    headers = {"Authorization": f"Bearer {slow_stack.api_key}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as c:
            response = await c.post("/v1/chat/completions", json={**LONG, "stream": True}, headers=headers)
    assert response.status_code == 200
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert error["error"]["code"] == "timeout" and error["error"]["type"] == "server_error"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-2])
    assert text  # some of the story made it out before the deadline
