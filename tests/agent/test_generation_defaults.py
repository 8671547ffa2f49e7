"""Each expert's generation defaults: kept in its profile, published in its registry meta by the job, read by the
directory, and applied by the client where the request sets nothing (the request wins, max_tokens always bounded)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from agent_testkit import make_request

from fleetmind.agent.experts import ExpertDirectory
from fleetmind.agent.profiles import Generation, load_profiles, profile
from fleetmind.cluster.client import ServiceInstance
from fleetmind.cluster.jobspec import load_job
from fleetmind.contracts.protocol import SamplingParams
from fleetmind.llm.chat import DEFAULT_MAX_TOKENS, completion_payload
from fleetmind.security.service import PROOF_META, SecretSource, proof

JOBS = Path(__file__).resolve().parents[2] / "jobs"
DEFAULTS = {"temperature": 0.0, "top_p": 0.9, "dry_multiplier": 0.8, "repeat_penalty": 1.1, "max_tokens": 200}


def test_every_packaged_expert_has_measured_defaults_with_a_bounded_length() -> None:
    for name in load_profiles():
        generation = profile(name).generation
        assert generation.max_tokens is not None and generation.temperature is not None, name


def test_the_expert_defaults_apply_where_the_request_sets_nothing() -> None:
    payload = completion_payload(make_request("hi", params=SamplingParams()), model="general", defaults=DEFAULTS)
    assert {k: payload[k] for k in DEFAULTS} == DEFAULTS


def test_every_field_the_request_sets_wins() -> None:
    params = SamplingParams(temperature=0.7, top_p=0.5, max_tokens=9, seed=4)
    payload = completion_payload(make_request("hi", params=params), model="general", defaults=DEFAULTS)
    assert (payload["temperature"], payload["top_p"], payload["max_tokens"], payload["seed"]) == (0.7, 0.5, 9, 4)
    assert payload["dry_multiplier"] == 0.8  # what OpenAI's API cannot name stays the expert's


def test_an_openai_penalty_from_the_caller_takes_over_repetition_control() -> None:
    params = SamplingParams(frequency_penalty=0.0)
    payload = completion_payload(make_request("hi", params=params), model="general", defaults=DEFAULTS)
    assert payload["frequency_penalty"] == 0.0
    assert "dry_multiplier" not in payload and "repeat_penalty" not in payload
    assert payload["temperature"] == 0.0


def test_max_tokens_is_never_unbounded_and_defaults_cannot_touch_the_request_itself() -> None:
    bare = completion_payload(make_request("hi", params=SamplingParams()), model="general")
    assert bare["max_tokens"] == DEFAULT_MAX_TOKENS
    sneaky = {"model": "other", "messages": [], "stream": False, "temperature": 0.1}
    payload = completion_payload(make_request("hi", params=SamplingParams()), model="general", defaults=sneaky)
    assert payload["model"] == "general" and payload["stream"] is True and payload["messages"][0]["content"] == "hi"


def test_the_job_publishes_the_defaults_and_the_directory_reads_them_back() -> None:
    for generation in (Generation(temperature=0.2, dry_multiplier=0.8, max_tokens=200), profile("general").generation):
        job = load_job(JOBS / "llama-expert.nomad.hcl", {"model": "/m.gguf", "generation": generation.meta()})
        meta = job["TaskGroups"][0]["Services"][0]["Meta"]
        assert Generation.from_meta(meta["generation"]) == generation
    assert profile("general").generation.dry_sequence_breakers == ("\n",)  # a newline survives HCL and JSON
    default_job = load_job(JOBS / "llama-expert.nomad.hcl", {"model": "/m.gguf"})
    assert Generation.from_meta(default_job["TaskGroups"][0]["Services"][0]["Meta"]["generation"]) == Generation()


def test_llama_server_takes_every_packaged_experts_defaults(llama_server_url: str) -> None:
    """What the agent sends is what llama-server accepts: no field it refuses (an empty breaker list is a 400)."""
    for name in load_profiles():
        request = make_request("Say hi.", params=SamplingParams(max_tokens=4))
        body = completion_payload(request, model=name, defaults=profile(name).generation.payload())
        with httpx.stream("POST", f"{llama_server_url}/v1/chat/completions", json=body, timeout=60) as resp:
            assert resp.status_code == 200, (name, resp.read())
            assert any(line.startswith("data:") for line in resp.iter_lines()), name
    with pytest.raises(ValueError, match="dry_sequence_breakers"):
        Generation.from_meta('{"dry_multiplier": 0.8, "dry_sequence_breakers": []}')


class Registry:
    def __init__(self, instances: list[ServiceInstance]) -> None:
        self.instances = instances

    async def aservices_by_tag(self, tag: str) -> list[ServiceInstance]:
        return self.instances


def instance(name: str, port: int, generation: str) -> ServiceInstance:
    meta = {PROOF_META: proof("s3cret", f"expert-{name}", port), "generation": generation}
    return ServiceInstance(f"expert-{name}", name, "127.0.0.1", port, tags=("expert", f"expert:{name}"), meta=meta)


@pytest.mark.asyncio
async def test_defaults_that_do_not_check_out_are_logged_and_left_out(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(
        [
            instance("general", 1, '{"temperature":0.0,"max_tokens":200}'),
            instance("coding", 2, '{"temperature":"hot"}'),
            instance("math", 3, "not json"),
        ]
    )
    directory = ExpertDirectory(cluster=registry, secret=SecretSource("s3cret"))  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="fleetmind.agent.experts")
    experts = {e.name: e for e in await directory.experts()}
    assert experts["general"].generation == {"temperature": 0.0, "max_tokens": 200}
    assert experts["coding"].generation == {} and experts["math"].generation == {}
    bad = [r for r in caplog.records if getattr(r, "event", None) == "expert_generation_invalid"]
    assert {getattr(r, "expert", None) for r in bad} == {"coding", "math"}
    assert "temperature" in bad[0].getMessage()
