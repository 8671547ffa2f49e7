"""Expert discovery through the registry: the embedded cluster's Consul API, the real ClusterClient."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from agent_testkit import collect, direct_completion, make_request

from fleetmind.agent.experts import ExpertDirectory
from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.cluster.client import ClusterClient
from fleetmind.cluster.embedded import EmbeddedCluster
from fleetmind.security.service import PROOF_META, SecretSource, proof

pytestmark = pytest.mark.asyncio


async def test_an_expert_registered_in_the_registry_answers(tmp_path: Path, llama_server_url: str) -> None:
    cluster = EmbeddedCluster(logs_dir=tmp_path / "logs", nomad_port=0, consul_port=0)
    await cluster.start()
    runtime: AgentRuntime | None = None
    try:
        expert = urlsplit(llama_server_url)
        service = {
            "Name": "expert-general",
            "ID": "expert-general-1",
            "Address": expert.hostname,
            "Port": expert.port,
            "Tags": ["expert", "expert:general"],
            # what the job's meta carries: proof that whoever registered it holds the stack's service secret
            "Meta": {PROOF_META: proof("s3cret", "expert-general", expert.port or 0)},
            "Check": {"HTTP": f"{llama_server_url}/health", "Interval": "200ms", "Timeout": "1s"},
        }
        async with httpx.AsyncClient(headers={"X-Consul-Token": cluster.token}) as http:
            resp = await http.put(f"http://{cluster.consul_addr}/v1/agent/service/register", json=service)
            assert resp.status_code == 200

        registry = ClusterClient(consul_addr=cluster.consul_addr, token=cluster.token)
        directory = ExpertDirectory(cluster=registry, ttl_s=0, secret=SecretSource("s3cret"))
        for _ in range(100):  # until the first health check passes
            if await directory.experts():
                break
            await asyncio.sleep(0.1)
        assert [(e.name, e.url, e.source) for e in await directory.experts()] == [
            ("general", llama_server_url, "registry")
        ]

        runtime = AgentRuntime(settings=AgentSettings(), directory=directory)
        await runtime.start()
        question = "Where are the experts?"
        events = await collect(runtime.submit(make_request(question)))
        assert events[-1].type == "done" and events[-1].expert == "general"
        assert "".join(e.text for e in events[:-1]) == direct_completion(llama_server_url, question)[0]
    finally:
        if runtime is not None:
            await runtime.stop()
        await cluster.stop()


async def test_an_unreachable_registry_is_a_clear_no_expert_error(dead_url: str) -> None:
    addr = dead_url.removeprefix("http://")
    directory = ExpertDirectory(cluster=ClusterClient(consul_addr=addr), ttl_s=0)
    runtime = AgentRuntime(settings=AgentSettings(), directory=directory)
    await runtime.start()
    try:
        events = await collect(runtime.submit(make_request("Hello?")))
    finally:
        await runtime.stop()
    assert [(e.type, e.code) for e in events] == [("error", "no_expert")]
    assert "registry" in (events[0].message or "")
