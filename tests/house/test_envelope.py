"""Every app of the stack answers every failure in the one envelope: an unknown path (404), a wrong method (405),
a body that is not JSON (400), no key (401) and a crash (500, nothing of it leaked). The apps are the real ones,
driven in-process over ASGI; the crash is a route added for the test that raises."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.envelope import envelope_problem


@asynccontextmanager
async def agent_process(tmp: Path) -> AsyncIterator[tuple[FastAPI, str]]:
    from fleetmind.agent.runtime import AgentRuntime
    from fleetmind.agent.settings import AgentSettings
    from fleetmind.apps.agent_process import create_app, detach_logging
    from fleetmind.config import Settings

    runtime = AgentRuntime(settings=AgentSettings(experts="general=http://127.0.0.1:1"))
    app = create_app(Settings(state_dir=tmp), runtime)
    try:
        yield app, "/api/agent/chat"
    finally:
        await app.state.tool_runs.aclose()
        detach_logging(app)


@asynccontextmanager
async def gateway(tmp: Path) -> AsyncIterator[tuple[FastAPI, str]]:
    from fleetmind.gateway.app import create_app
    from fleetmind.gateway.settings import GatewaySettings
    from fleetmind.security import KeyStore

    yield create_app(GatewaySettings(), key_store=KeyStore(tmp / "keys.json")), "/v1/chat/completions"


@asynccontextmanager
async def provisioning(tmp: Path) -> AsyncIterator[tuple[FastAPI, str]]:
    from fleetmind.provisioning.app import create_app
    from fleetmind.provisioning.settings import ProvisionSettings
    from fleetmind.security import KeyStore

    playbook = tmp / "playbook.yaml"
    playbook.write_text("- hosts: all\n  tasks: []\n")
    settings = ProvisionSettings(state_dir=tmp / "prov", playbook=playbook)
    yield create_app(settings, key_store=KeyStore(tmp / "keys.json")), "/api/ready-for-provisioning"


APPS: dict[str, Callable[[Path], Any]] = {
    "agent+mission control": agent_process,
    "gateway": gateway,
    "provisioning": provisioning,
}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(APPS))
async def test_every_failure_is_the_envelope(name: str, tmp_path: Path) -> None:
    async with APPS[name](tmp_path) as (app, post_route):

        @app.get("/test-crash")
        async def crash() -> None:
            raise RuntimeError("secret internals of the crash")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answers = {
                404: await client.get("/no/such/path"),
                405: await client.delete(post_route),
                401: await client.post(post_route, json={}),
                500: await client.get("/test-crash"),
            }
        for status, response in answers.items():
            assert response.status_code == status, (name, status, response.text)
            problem = envelope_problem(status, response.content, response.headers.get("content-type", ""))
            assert problem is None, (name, problem)
        assert "secret internals" not in answers[500].text
        assert answers[500].json()["error"]["code"] == "internal_error"
        assert answers[404].json()["error"]["code"] == "not_found"


def test_the_check_refuses_what_is_not_the_envelope() -> None:
    ok = b'{"error": {"message": "no", "type": "invalid_request_error", "param": null, "code": "x"}}'
    assert envelope_problem(404, ok, "application/json") is None
    assert envelope_problem(200, b"anything", "text/plain") is None
    for body, content_type in (
        (b'{"detail": "Not Found"}', "application/json"),  # FastAPI's own shape
        (b'{"error": {"message": "no"}}', "application/json"),
        (b"Internal Server Error", "text/plain"),
        (b"{", "application/json"),
    ):
        assert envelope_problem(500, body, content_type) is not None, body
