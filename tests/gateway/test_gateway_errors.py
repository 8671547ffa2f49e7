"""Every way a request can fail at the gateway, in-process: each answer is OpenAI's error envelope."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fleetmind.cluster.client import ServiceInstance
from fleetmind.gateway.app import create_app
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.security import KeyStore
from tests.gateway.gateway_helpers import FakeRegistry, assert_envelope

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
GOOD: dict[str, Any] = {"model": "fleetmind", "messages": [{"role": "user", "content": "hi"}]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    for response in (await client.post(CHAT, json=GOOD), await client.get("/v1/models")):
        error = assert_envelope(response, 401, code="invalid_api_key")
        assert error["type"] == "invalid_request_error"
        assert "API key" in error["message"]
        assert response.headers["www-authenticate"] == "Bearer"


async def test_wrong_key_is_401_and_never_logged(
    client: httpx.AsyncClient, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "fm-not-a-real-key-0123456789"
    for headers in (auth(wrong), {"Authorization": wrong}, {"Authorization": f"Basic {wrong}"}):
        response = await client.post(CHAT, json=GOOD, headers=headers)
        assert_envelope(response, 401, code="invalid_api_key")
        assert wrong not in response.text
    assert wrong not in caplog.text
    # the right key gets past auth (no agent anywhere, so it ends at discovery)
    assert (await client.get("/v1/models", headers=auth(api_key))).status_code == 200


async def test_empty_key_store_says_how_to_make_a_key(tmp_path: Any, settings: GatewaySettings) -> None:
    app = create_app(settings, key_store=KeyStore(tmp_path / "none.json"), registry=FakeRegistry())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        error = assert_envelope(await c.get("/v1/models", headers=auth("fm-x")), 401, code="invalid_api_key")
    assert "fleetmind keys create" in error["message"]


async def test_malformed_json_is_400_and_the_server_keeps_serving(client: httpx.AsyncClient, api_key: str) -> None:
    headers = {**auth(api_key), "Content-Type": "application/json"}
    for body in (b'{"model": "fleetmind", "messages": [', b"not json at all", b'{"a": 1,}'):
        error = assert_envelope(await client.post(CHAT, content=body, headers=headers), 400, code="invalid_json")
        assert "JSON" in error["message"]
    listing = await client.get("/v1/models", headers=auth(api_key))
    assert listing.status_code == 200
    assert listing.json()["data"][0]["id"] == "fleetmind"
    # a good chat request gets all the way to looking for the agent
    assert_envelope(await client.post(CHAT, json=GOOD, headers=auth(api_key)), 503, code="agent_unavailable")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"n": 2}, "n"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
            "response_format",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]},
            "messages[0].content[0].type",
        ),
    ],
)
async def test_unsupported_parameters_are_rejected_by_name(
    client: httpx.AsyncClient, api_key: str, extra: dict[str, Any], param: str
) -> None:
    error = assert_envelope(await client.post(CHAT, json={**GOOD, **extra}, headers=auth(api_key)), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param.split("[")[0] in error["message"] or "image_url" in error["message"]


async def test_harmless_defaults_and_unknown_fields_pass(client: httpx.AsyncClient, api_key: str) -> None:
    body = {
        **GOOD,
        "n": 1,
        "logprobs": False,
        "tools": [],
        "tool_choice": "none",
        "frequency_penalty": 0.5,
        "presence_penalty": -1,
        "user": "someone",
        "some_future_openai_field": {"x": 1},
        "response_format": {"type": "json_object"},
        "stop": "\n",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        ],
    }
    # past validation: the only thing missing is an agent
    assert_envelope(await client.post(CHAT, json=body, headers=auth(api_key)), 503, code="agent_unavailable")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fleetmind"}, "messages"),
        ({**GOOD, "messages": []}, "messages"),
        ({**GOOD, "temperature": 3}, "temperature"),
        ({**GOOD, "top_p": 0}, "top_p"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({**GOOD, "messages": [{"role": "user"}]}, "messages[0].content"),
        ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({**GOOD, "stream_options": {"include_usage": True}}, "stream_options"),
        ({**GOOD, "frequency_penalty": 2.5}, "frequency_penalty"),
        ({**GOOD, "presence_penalty": -3}, "presence_penalty"),
    ],
)
async def test_invalid_values_are_400_naming_the_param(
    client: httpx.AsyncClient, api_key: str, body: dict[str, Any], param: str
) -> None:
    error = assert_envelope(await client.post(CHAT, json=body, headers=auth(api_key)), 400)
    assert error["param"] == param


async def test_unknown_model_card_is_404(client: httpx.AsyncClient, api_key: str) -> None:
    # (a chat for an unknown model is the agent's to refuse: the one model check, tests/house/test_request_path.py)
    error = assert_envelope(await client.get("/v1/models/gpt-4o", headers=auth(api_key)), 404, code="model_not_found")
    assert error["param"] == "model"
    assert "gpt-4o" in error["message"]
    for known in ("fleetmind", "coder", "general"):
        assert known in error["message"]


async def test_models_lists_fleetmind_and_registered_experts(client: httpx.AsyncClient, api_key: str) -> None:
    listing = (await client.get("/v1/models", headers=auth(api_key))).json()
    assert listing["object"] == "list"
    # the registry also holds expert-fake, registered without the service secret's proof: never listed
    assert [m["id"] for m in listing["data"]] == ["fleetmind", "coder", "general"]
    assert_envelope(await client.get("/v1/models/fake", headers=auth(api_key)), 404, code="model_not_found")
    for card in listing["data"]:
        assert card["object"] == "model" and card["owned_by"] == "fleetmind"
        assert isinstance(card["created"], int)
    card = (await client.get("/v1/models/coder", headers=auth(api_key))).json()
    assert card["id"] == "coder"
    # the gateway does not check the model itself: it goes looking for the agent, which does
    assert_envelope(
        await client.post(CHAT, json={**GOOD, "model": "coder"}, headers=auth(api_key)),
        503,
        code="agent_unavailable",
    )


async def test_models_without_a_registry_is_just_fleetmind(
    client: httpx.AsyncClient, api_key: str, registry: FakeRegistry
) -> None:
    registry.down = True
    listing = (await client.get("/v1/models", headers=auth(api_key))).json()
    assert [m["id"] for m in listing["data"]] == ["fleetmind"]


async def test_unknown_route_and_wrong_method_use_the_envelope(client: httpx.AsyncClient, api_key: str) -> None:
    error = assert_envelope(await client.get("/v1/nothing-here", headers=auth(api_key)), 404, code="not_found")
    assert "/v1/nothing-here" in error["message"]
    assert_envelope(await client.get("/nope"), 404, code="not_found")
    assert_envelope(await client.get(CHAT, headers=auth(api_key)), 405, code="method_not_allowed")
    assert_envelope(await client.delete("/v1/models", headers=auth(api_key)), 405, code="method_not_allowed")


async def test_crash_is_a_500_envelope(
    app: FastAPI, client: httpx.AsyncClient, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = app.state.chat_service

    async def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "complete", boom)
    error = assert_envelope(await client.post(CHAT, json=GOOD, headers=auth(api_key)), 500, code="internal_error")
    assert error["type"] == "server_error"
    assert "secret internals" not in error["message"]


async def test_no_agent_in_registry_is_503(client: httpx.AsyncClient, api_key: str, registry: FakeRegistry) -> None:
    for stream in (False, True):
        response = await client.post(CHAT, json={**GOOD, "stream": stream}, headers=auth(api_key))
        error = assert_envelope(response, 503, code="agent_unavailable")
        assert error["type"] == "server_error"
        assert "pipecatapp" in error["message"]
    assert registry.calls > 1  # it kept asking while it waited


async def test_unreachable_registry_is_503_naming_it(key_store: KeyStore, api_key: str, free_port: Any) -> None:
    # the real ClusterClient against an address where nothing listens
    addr = f"127.0.0.1:{free_port()}"
    app = create_app(GatewaySettings(discovery_timeout_s=0.2, consul_addr=addr), key_store=key_store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        error = assert_envelope(await c.post(CHAT, json=GOOD, headers=auth(api_key)), 503, code="agent_unavailable")
        assert addr in error["message"]
        listing = (await c.get("/v1/models", headers=auth(api_key))).json()
        assert [m["id"] for m in listing["data"]] == ["fleetmind"]
    await app.state.chat_service.aclose()


async def test_fixed_agent_url_that_does_not_answer_is_503(key_store: KeyStore, api_key: str, free_port: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = GatewaySettings(agent_url=url, discovery_timeout_s=0.3)
    app = create_app(settings, key_store=key_store, registry=FakeRegistry(down=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        error = assert_envelope(await c.post(CHAT, json=GOOD, headers=auth(api_key)), 503, code="agent_unavailable")
    assert url in error["message"]
    await app.state.chat_service.aclose()


async def test_health_and_docs_need_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    spec = (await client.get("/openapi.json")).json()
    assert {"/v1/chat/completions", "/v1/models", "/v1/models/{model_id}", "/health"} <= set(spec["paths"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(spec)
    schemas = spec["components"]["schemas"]
    assert refs and all(r.removeprefix("#/components/schemas/") in schemas for r in refs), refs
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_agent_found_once_it_turns_healthy(settings: GatewaySettings) -> None:
    from fleetmind.gateway.discovery import AgentLocator
    from fleetmind.security.service import PROOF_META, SecretSource, proof

    meta = {PROOF_META: proof("s3cret", "pipecatapp", 8000)}
    agent = ServiceInstance(name="pipecatapp", id="pipecatapp-1", address="10.0.0.7", port=8000, meta=meta)
    registry = FakeRegistry(agents=[[], [], [agent]])
    locator = AgentLocator(
        settings.model_copy(update={"discovery_timeout_s": 30, "registry_ttl_s": 60}),
        registry=registry,
        secret=SecretSource("s3cret"),
    )
    assert await locator.agent_url() == "http://10.0.0.7:8000"
    assert registry.calls == 3
    assert await locator.agent_url() == "http://10.0.0.7:8000"
    assert registry.calls == 3  # cached
    locator.forget("http://10.0.0.7:8000")
    await locator.agent_url()
    assert registry.calls == 4
