"""The expert directory (fixed list and registry discovery) and the llama-server streaming client."""

from __future__ import annotations

import asyncio
import json

import pytest
from agent_testkit import DETERMINISTIC, direct_completion, make_request

from fleetmind.agent.experts import ExpertDirectory, expert_name, parse_experts
from fleetmind.cluster.client import RegistryUnavailable, ServiceInstance
from fleetmind.contracts.protocol import AgentRequest, SamplingParams
from fleetmind.llm.chat import (
    Completion,
    Expert,
    ExpertClient,
    ExpertRejectedError,
    ExpertUnavailableError,
    StreamItem,
    TextDelta,
    completion_payload,
)
from fleetmind.security.service import PROOF_META, SecretSource
from fleetmind.security.service import proof as service_proof


async def stream(url: str, request: AgentRequest) -> list[StreamItem]:
    client = ExpertClient(connect_timeout_s=2)
    try:
        return [item async for item in client.stream_chat(Expert("g", url), request)]
    finally:
        await client.aclose()


def test_parse_experts_keeps_order_and_strips() -> None:
    assert parse_experts(" b=http://h:2/ , a=http://h:1,") == {"b": "http://h:2", "a": "http://h:1"}


@pytest.mark.parametrize("spec", ["", "a", "a=", "=http://h:1", "a=ftp://h:1", "a=http://h:1,a=http://h:2"])
def test_parse_experts_rejects_malformed_lists(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_experts(spec)


def test_expert_name_from_tag_then_service_name() -> None:
    tagged = ServiceInstance("expert-x", "id1", "127.0.0.1", 1, tags=("expert", "expert:coder"))
    untagged = ServiceInstance("expert-math", "id2", "127.0.0.1", 2, tags=("expert",))
    assert expert_name(tagged) == "coder"
    assert expert_name(untagged) == "math"


class FakeRegistry:
    """Stands in for Consul, which cannot run here: answers ``aservices_by_tag`` from a list it is given."""

    def __init__(self, instances: list[ServiceInstance]) -> None:
        self.instances = instances
        self.calls = 0
        self.fail = False

    async def aservices_by_tag(self, tag: str) -> list[ServiceInstance]:
        self.calls += 1
        if self.fail:
            raise RegistryUnavailable("registry at 127.0.0.1:8500 did not answer")
        return [i for i in self.instances if tag in i.tags]


@pytest.mark.asyncio
async def test_registry_discovery_is_cached_and_tracks_health() -> None:
    now = [100.0]
    proof = {PROOF_META: service_proof("s3cret", "expert-general", 8090), "node_class": "avx2"}
    general = ServiceInstance("expert-general", "g1", "10.0.0.5", 8090, tags=("expert", "expert:general"), meta=proof)
    other = ServiceInstance("gateway", "gw", "10.0.0.6", 8080, tags=("http",))
    # registered under a known name without the proof (a local process's fake): never listed, never called
    fake = ServiceInstance("expert-general", "g2", "10.0.0.9", 8090, tags=("expert", "expert:general"))
    registry = FakeRegistry([general, other, fake])
    directory = ExpertDirectory(
        cluster=registry,  # type: ignore[arg-type]
        ttl_s=2.0,
        clock=lambda: now[0],
        secret=SecretSource("s3cret"),
    )

    experts = await directory.experts()
    assert experts == [Expert("general", "http://10.0.0.5:8090", "registry", node_class="avx2")]
    await directory.experts()
    assert registry.calls == 1  # answered from the cache
    now[0] += 2.5
    registry.instances = []
    assert await directory.experts() == []
    assert registry.calls == 2
    (health, healthy), *_ = directory.snapshot()
    assert health.name == "general" and not health.listed and not healthy
    assert health.node_class == "avx2"  # the status page shows where each expert runs

    # A registry outage keeps what was known and says so.
    registry.instances = [general]
    now[0] += 2.5
    await directory.experts()
    registry.fail = True
    now[0] += 2.5
    assert [e.name for e in await directory.experts()] == ["general"]
    assert directory.discovery_error and "did not answer" in directory.discovery_error


@pytest.mark.asyncio
async def test_a_stale_answer_serves_the_request_while_the_registry_is_asked_in_the_background() -> None:
    now = [100.0]
    meta = {PROOF_META: service_proof("s3cret", "expert-general", 8090)}
    general = ServiceInstance("expert-general", "g1", "10.0.0.5", 8090, tags=("expert", "expert:general"), meta=meta)
    registry = FakeRegistry([general])
    directory = ExpertDirectory(
        cluster=registry,  # type: ignore[arg-type]
        ttl_s=2.0,
        stale_s=30.0,
        clock=lambda: now[0],
        secret=SecretSource("s3cret"),
    )
    assert [e.name for e in await directory.experts()] == ["general"]  # nothing known yet: this one waits
    assert registry.calls == 1
    registry.instances = []
    now[0] += 5  # past the ttl, within the stale window
    assert [e.name for e in await directory.experts()] == ["general"]  # what was known, at once
    await asyncio.sleep(0)  # the refresh runs off the request's path
    await asyncio.sleep(0)
    assert registry.calls == 2
    assert await directory.experts() == []  # the next request sees the registry's answer
    assert registry.calls == 2
    now[0] += 100  # past the stale window too: the request waits for the registry again
    registry.instances = [general]
    assert [e.name for e in await directory.experts()] == ["general"]
    assert registry.calls == 3
    await directory.aclose()


def test_a_failure_sends_a_fixed_expert_into_cooldown() -> None:
    now = [0.0]
    directory = ExpertDirectory(fixed={"a": "http://h:1"}, cooldown_s=10.0, clock=lambda: now[0])
    expert = Expert("a", "http://h:1")
    assert directory.is_healthy(expert)
    directory.record_failure(expert, "boom")
    assert not directory.is_healthy(expert)
    now[0] += 11
    assert directory.is_healthy(expert)
    directory.record_failure(expert, "boom")
    directory.record_success(expert)
    assert directory.is_healthy(expert)
    (health, _), *_ = directory.snapshot()
    assert (health.served, health.failed, health.consecutive_failures, health.last_error) == (1, 2, 0, "boom")


def test_payload_passes_sampling_params_through() -> None:
    params = SamplingParams(
        temperature=0.2, top_p=0.9, max_tokens=7, stop=["\n"], seed=3, response_format={"type": "json_object"}
    )
    payload = completion_payload(make_request("hi", params=params), model="general")
    assert payload["messages"] == [{"role": "user", "content": "hi"}]
    assert payload["stream"] is True and payload["stream_options"] == {"include_usage": True}
    for key, value in params.model_dump(exclude_none=True).items():
        assert payload[key] == value
    assert "top_p" not in completion_payload(make_request("hi", params=SamplingParams()), model="general")


@pytest.mark.asyncio
async def test_client_streams_text_then_usage(llama_server_url: str) -> None:
    items = await stream(llama_server_url, make_request("Sing."))
    *deltas, end = items
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert isinstance(end, Completion)
    text, usage = direct_completion(llama_server_url, "Sing.", DETERMINISTIC)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == text
    assert end.usage.completion_tokens == usage["completion_tokens"] > 0
    assert end.usage.prompt_tokens == usage["prompt_tokens"] > 0


@pytest.mark.slow
@pytest.mark.asyncio
async def test_client_honours_response_format(packaged_llama_server_url: str) -> None:
    # The tiny random model's vocabulary cannot carry a JSON grammar, so this needs the packaged model.
    params = SamplingParams(temperature=0.0, seed=1, max_tokens=64, response_format={"type": "json_object"})
    request = make_request("Give the capital of France as JSON with the key capital.", params=params)
    items = await stream(packaged_llama_server_url, request)
    text = "".join(i.text for i in items if isinstance(i, TextDelta))
    end = items[-1]
    assert isinstance(end, Completion)
    if end.finish_reason == "stop":
        assert isinstance(json.loads(text), dict)  # grammar-constrained: a complete answer is a JSON object
    else:
        assert text.lstrip().startswith("{")


@pytest.mark.asyncio
async def test_client_reports_a_rejected_request(llama_server_url: str) -> None:
    params = SamplingParams(response_format={"type": "bogus"})
    with pytest.raises(ExpertRejectedError, match="HTTP 400"):
        await stream(llama_server_url, make_request("Hi", params=params))


@pytest.mark.asyncio
async def test_client_reports_an_unreachable_expert(dead_url: str) -> None:
    with pytest.raises(ExpertUnavailableError, match="expert g"):
        await stream(dead_url, make_request("Hi"))
