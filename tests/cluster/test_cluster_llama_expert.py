"""jobs/llama-expert.nomad.hcl end to end: real llama-server on the tiny model, found by tag, stopped."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx

from conftest import JOBS_DIR, RunningCluster, group_alive, wait_for
from fleetmind.agent.experts import ExpertDirectory
from fleetmind.cluster.jobspec import load_job
from fleetmind.llm import binaries
from fleetmind.security.service import PROOF_META, SecretSource, bearer, proof, proven

SECRET = "test-service-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_llama_expert_job_serves_and_registers(running_cluster: RunningCluster, tiny_model: Path) -> None:
    rc = running_cluster
    port = _free_port()
    job = load_job(
        JOBS_DIR / "llama-expert.nomad.hcl",
        {
            "llama_server": str(binaries.llama_server()),
            "model": str(tiny_model),
            "expert_name": "tiny",
            "port": port,
            "host": "127.0.0.1",
            "threads": 1,
            "ctx_size": 512,
            # as `fleetmind up` passes them: the server's API key, and the registration's proof of it
            "service_secret": SECRET,
            "service_proof": proof(SECRET, "expert-tiny", port),
        },
    )
    rc.client.register_job(job)
    found = wait_for(lambda: rc.client.services_by_tag("expert:tiny"), timeout=120, what="expert-tiny passing")
    assert [(s.name, s.port) for s in found] == [("expert-tiny", port)]
    meta = found[0].meta
    assert {k: v for k, v in meta.items() if k != PROOF_META} == {
        "expert": "tiny",
        "model": "tiny.gguf",
        "system_prompt": "You are a helpful assistant.",
        "generation": "{}",
        # the node's class, interpolated from its meta (this machine's, classified by the embedded node)
        "node_class": rc.client.node(rc.client.nodes()[0]["ID"])["Meta"]["fleetmind_class"],
    }
    # the agent's expert directory carries it to Mission Control's status
    directory = ExpertDirectory(cluster=rc.client, secret=SecretSource(SECRET))
    assert [(e.name, e.node_class) for e in asyncio.run(directory.experts())] == [("tiny", meta["node_class"])]
    assert proven(SECRET, found[0]) and not proven("another-secret", found[0])
    assert httpx.get(f"{found[0].url}/v1/models", timeout=10).status_code == 401  # the expert wants the secret
    models = httpx.get(f"{found[0].url}/v1/models", headers=bearer(SECRET), timeout=10).json()
    assert models["data"]
    # A conversation cut back to its last turns (the voice history, a client's sliding window) is not read again:
    # the job runs llama-server with --cache-reuse, which shifts the cached turns to their new place.
    cached_turns_reused(found[0].url)
    alloc = rc.alloc("llama-expert")
    assert alloc["TaskStates"]["llama-server"]["State"] == "running"
    proc = rc.cluster.orchestrator.allocs[alloc["ID"]].tasks["llama-server"].proc
    assert proc is not None
    rc.client.stop_job("llama-expert")
    wait_for(lambda: rc.client.allocation(alloc["ID"])["ClientStatus"] == "complete", what="stopped")
    assert rc.client.services_by_tag("expert") == []
    assert not group_alive(proc.pid)
    assert (rc.logs_dir / "llama-expert.expert.llama-server.stderr.log").stat().st_size > 0


def cached_turns_reused(url: str) -> None:
    system = "System: you are a kind helper who answers briefly.\n"
    turns = [f"User: is it sunny in town {i}?\nAssistant: yes, town {i} is sunny.\n" for i in range(1, 4)]

    def evaluated(prompt: str) -> int:
        body = {"prompt": prompt, "n_predict": 1, "cache_prompt": True}
        reply = httpx.post(f"{url}/completion", json=body, headers=bearer(SECRET), timeout=60)
        reply.raise_for_status()
        return int(reply.json()["timings"]["prompt_n"])

    last_turn = len(httpx.post(f"{url}/tokenize", json={"content": turns[-1]}, headers=bearer(SECRET)).json()["tokens"])
    assert last_turn > 16  # longer than the reuse chunk
    evaluated(system + "".join(turns) + "User: and town 4?\n")
    # without reuse every token after the system prompt is read again (the last turn and the question)
    assert evaluated(system + turns[-1] + "User: and town 5?\n") < last_turn // 2
