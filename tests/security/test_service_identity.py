"""Issue 14, "client keys can be stolen through the registry": services prove who they are.

- a fake ``pipecatapp`` registered in the registry (no proof, or a proof copied from another instance) never
  receives a request, so it never sees a key; the real agent gets the service credential and the caller's id and
  scope, never the caller's key;
- the agent's chat endpoint refuses a wrong service credential and a caller it cannot name;
- an expert, started from its job spec, refuses a call without the service secret and reflects no CORS origin.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleetmind.cluster.client import ServiceInstance
from fleetmind.cluster.jobspec import load_job
from fleetmind.contracts.protocol import AgentRequest, ChatMessage
from fleetmind.gateway.app import create_app as create_gateway
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.llm import binaries
from fleetmind.llm.chat import Expert, ExpertClient
from fleetmind.security import KeyStore
from fleetmind.security.service import (
    CALLER_ID_HEADER,
    CALLER_SCOPE_HEADER,
    PROOF_META,
    SERVICE_HEADER,
    SecretSource,
    ensure_secret,
    proof,
)
from tests.conftest import free_port, stop_process, wait_http
from tests.gateway.gateway_helpers import FakeRegistry

pytestmark = pytest.mark.asyncio

JOBS = Path(__file__).resolve().parents[2] / "jobs"
SECRET = "the-stack-service-secret"


def _agent(address: str, port: int, meta: dict[str, str] | None = None) -> ServiceInstance:
    return ServiceInstance("pipecatapp", f"pipecatapp-{address}-{port}", address, port, ("agent",), meta or {})


def _answer(request: httpx.Request) -> httpx.Response:
    """What a real agent streams back: one delta, then done."""
    rid = json.loads(request.content)["id"]
    lines = [
        {"type": "delta", "id": rid, "text": "hello"},
        {"type": "done", "id": rid, "finish_reason": "stop", "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return httpx.Response(200, text=body, headers={"content-type": "application/x-ndjson"})


async def test_a_fake_agent_in_the_registry_never_receives_a_request(tmp_path: Path) -> None:
    key, record = KeyStore(tmp_path / "keys.json").create("client")
    seen: list[httpx.Request] = []

    def agents(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _answer(request)

    genuine = _agent("10.0.0.7", 8000, {PROOF_META: proof(SECRET, "pipecatapp", 8000)})
    fakes = [
        _agent("10.0.0.66", 9999),  # registered by a local process: no proof
        _agent("10.0.0.66", 8001, {PROOF_META: "0" * 64}),  # a made-up proof
        # the genuine proof, copied from the registry onto another port: bound to the port, it does not check out
        _agent("10.0.0.66", 9998, {PROOF_META: proof(SECRET, "pipecatapp", 8000)}),
    ]
    settings = GatewaySettings(discovery_timeout_s=1, request_timeout_s=10, registry_ttl_s=0)
    app = create_gateway(
        settings,
        key_store=KeyStore(tmp_path / "keys.json"),
        registry=FakeRegistry(agents=[[*fakes, genuine]]),
        http=httpx.AsyncClient(transport=httpx.MockTransport(agents)),
        service_secret=SECRET,
    )
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        for _ in range(5):  # the locator picks among instances at random: every pick is the genuine one
            r = await c.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "fleetmind", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == "hello"
    assert len(seen) == 5 and {(q.url.host, q.url.port) for q in seen} == {("10.0.0.7", 8000)}
    for request in seen:
        assert request.headers[SERVICE_HEADER] == SECRET
        assert request.headers[CALLER_ID_HEADER] == record.id and request.headers[CALLER_SCOPE_HEADER] == "chat"
        assert "authorization" not in request.headers
        assert key not in str(request.headers) and key.encode() not in request.content


async def test_only_fakes_in_the_registry_is_no_agent(tmp_path: Path) -> None:
    key, _ = KeyStore(tmp_path / "keys.json").create("client")
    seen: list[httpx.Request] = []
    app = create_gateway(
        GatewaySettings(discovery_timeout_s=0.3, request_timeout_s=5, registry_ttl_s=0),
        key_store=KeyStore(tmp_path / "keys.json"),
        registry=FakeRegistry(agents=[[_agent("127.0.0.1", 9999)]]),
        http=httpx.AsyncClient(transport=httpx.MockTransport(lambda q: seen.append(q) or _answer(q))),
        service_secret=SECRET,
    )
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        r = await c.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "fleetmind", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert r.status_code == 503 and seen == []


async def test_the_agent_takes_the_service_credential_and_never_a_guess(tmp_path: Path, llama_server_url: str) -> None:
    from fleetmind.agent.runtime import AgentRuntime
    from fleetmind.agent.settings import AgentSettings
    from fleetmind.apps.agent_process import create_app, detach_logging
    from fleetmind.config import Settings

    secret = ensure_secret(tmp_path)
    assert (tmp_path / "service.secret").stat().st_mode & 0o777 == 0o600
    assert ensure_secret(tmp_path) == secret  # made once, never replaced
    runtime = AgentRuntime(settings=AgentSettings(experts=f"general={llama_server_url}"))
    app = create_app(Settings(state_dir=tmp_path), runtime)
    await runtime.start()
    body = {"messages": [{"role": "user", "content": "hi"}], "params": {"max_tokens": 4}, "owner": "key_forged"}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            for headers in (
                {SERVICE_HEADER: "not-the-secret", CALLER_ID_HEADER: "key_abc"},
                {SERVICE_HEADER: secret},  # a caller it cannot name
                {SERVICE_HEADER: secret, CALLER_ID_HEADER: "*"},  # "everyone" is no caller
                {SERVICE_HEADER: secret, CALLER_ID_HEADER: "key_abc", CALLER_SCOPE_HEADER: "root"},
                {CALLER_ID_HEADER: "key_abc", CALLER_SCOPE_HEADER: "admin"},  # identity without the credential
            ):
                r = await client.post("/api/agent/chat", headers=headers, json=body)
                assert r.status_code == 401, (headers, r.text)
            ok = await client.post(
                "/api/agent/chat",
                headers={SERVICE_HEADER: secret, CALLER_ID_HEADER: "key_abc", CALLER_SCOPE_HEADER: "chat"},
                json={**body, "conversation_id": "c1"},
            )
            assert ok.status_code == 200 and '"done"' in ok.text
        # the named key owns the conversation, not the body's "owner"
        assert runtime.history.get("c1", owner="key_abc") and not runtime.history.get("c1", owner="key_forged")
    finally:
        await app.state.tool_runs.aclose()
        await runtime.stop()
        detach_logging(app)


@pytest.fixture
def expert_from_its_job(tiny_model: Path, tmp_path: Path) -> Iterator[str]:
    """llama-server started exactly as jobs/llama-expert.nomad.hcl says (its args and its env)."""
    port = free_port()
    job = load_job(
        JOBS / "llama-expert.nomad.hcl",
        {
            "llama_server": str(binaries.llama_server()),
            "model": str(tiny_model),
            "host": "127.0.0.1",
            "port": port,
            "threads": 1,
            "ctx_size": 512,
            "service_secret": SECRET,
            "service_proof": proof(SECRET, "expert-general", port),
        },
    )
    task = job["TaskGroups"][0]["Tasks"][0]
    assert SECRET not in json.dumps(task["Config"])  # not on the command line, where `ps` shows it
    cmd = [task["Config"]["command"], *(a.replace("${NOMAD_PORT_http}", str(port)) for a in task["Config"]["args"])]
    log = tmp_path / "expert.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=task["Env"], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60, proc)  # health stays open for the orchestrator's check
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


async def test_an_expert_refuses_a_call_without_the_service_secret(expert_from_its_job: str) -> None:
    url = expert_from_its_job + "/v1/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.post(url, json=body)).status_code == 401
        assert (await http.post(url, json=body, headers={"Authorization": "Bearer guess"})).status_code == 401
        assert (await http.get(expert_from_its_job + "/v1/models")).status_code == 401
        # no page of any origin may read an answer: its Origin is not reflected, credentials are not allowed
        evil = await http.post(
            url, json=body, headers={"Authorization": f"Bearer {SECRET}", "Origin": "https://evil.example"}
        )
        assert evil.status_code == 200
        assert evil.headers.get("access-control-allow-origin") not in ("https://evil.example", "*")
        assert evil.headers.get("access-control-allow-credentials") != "true"
    # the legitimate path: the agent's expert client sends the secret as Bearer
    client = ExpertClient(secret=SecretSource(SECRET))
    try:
        request = AgentRequest(messages=[ChatMessage(role="user", content="hi")], params={"max_tokens": 2})
        items = [item async for item in client.stream_chat(Expert("general", expert_from_its_job, "env"), request)]
    finally:
        await client.aclose()
    assert items and type(items[-1]).__name__ == "Completion"
