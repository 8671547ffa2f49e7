"""A model split over two ggml-rpc-server workers on loopback answers exactly as the same model served locally.

Both job files run on the embedded cluster: jobs/llamacpp-rpc.nomad.hcl starts two real workers (with their health
sidecars) that register "llamacpp-rpc"; jobs/llama-expert.nomad.hcl with rpc_workers=2 starts the launcher, which
finds them in the registry and execs llama-server with --rpc. The expert's log must show the layers on both
workers, and at temperature 0 its tokens must equal those of a plain local llama-server on the packaged SmolLM2.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import JOBS_DIR, RunningCluster, wait_for
from fleetmind.cluster.jobspec import load_job
from fleetmind.llm import binaries
from fleetmind.llm.models import resolve

PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nName three colours of the rainbow.<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _complete(url: str, prompt: str) -> tuple[list[int], str]:
    body = {"prompt": prompt, "n_predict": 32, "temperature": 0, "seed": 7, "cache_prompt": False}
    answer: dict[str, Any] = httpx.post(f"{url}/completion", json={**body, "return_tokens": True}, timeout=120).json()
    return list(answer["tokens"]), str(answer["content"])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_split_expert_answers_like_the_local_model(running_cluster: RunningCluster, tmp_path: Path) -> None:
    rc = running_cluster
    model = resolve("smollm2-135m-instruct")
    rc.client.register_job(
        load_job(
            JOBS_DIR / "llamacpp-rpc.nomad.hcl",
            {
                "rpc_server": str(binaries.rpc_server()),
                "python": sys.executable,
                "host": "127.0.0.1",
                "threads": 1,
                "distinct_hosts": False,  # both workers on this one machine (on a cluster: one per tagged node)
            },
        )
    )
    workers = wait_for(
        lambda: (
            len(rc.client.healthy_services("llamacpp-rpc", tag="rpc")) == 2
            and rc.client.healthy_services("llamacpp-rpc")
        ),
        timeout=60,
        what="two healthy RPC workers",
    )
    server_args = {"model": str(model), "host": "127.0.0.1", "threads": 1, "ctx_size": 2048}
    port = _free_port()
    rc.client.register_job(
        load_job(
            JOBS_DIR / "llama-expert.nomad.hcl",
            {
                **server_args,
                "llama_server": str(binaries.llama_server()),
                "python": sys.executable,
                "consul_addr": rc.cluster.consul_addr,
                "consul_token": rc.cluster.token,
                "expert_name": "split",
                "port": port,
                "rpc_workers": 2,
                "rpc_wait": 60,
                "extra_args": ["-lv", "4"],  # llama.cpp logs where each buffer lives only at this verbosity
            },
        )
    )
    (expert,) = wait_for(lambda: rc.client.healthy_services("expert-split"), timeout=120, what="split expert healthy")

    log = (rc.logs_dir / "llama-expert.expert.llama-server.stderr.log").read_text(errors="replace")
    endpoints = sorted(f"127.0.0.1:{w.port}" for w in workers)
    assert f"splitting the model over 2 RPC worker(s): {', '.join(endpoints)}" in log
    for endpoint in endpoints:
        assert f"[{endpoint}] model buffer size" in log, log[-3000:]
    assert "offloaded 31/31 layers" in log
    # An expert holds each worker, so their sidecars now say "busy" (429 → warning) and discovery leaves them out.
    wait_for(lambda: rc.client.healthy_services("llamacpp-rpc") == [], timeout=30, what="busy workers not passing")

    local_port = _free_port()
    cmd = [str(binaries.llama_server()), "-m", str(model), "--host", "127.0.0.1", "--port", str(local_port)]
    with (tmp_path / "local.log").open("wb") as fh:
        local = subprocess.Popen(
            [*cmd, "-c", "2048", "-t", "1", "--no-webui"], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        local_url = f"http://127.0.0.1:{local_port}"
        wait_for(lambda: _healthy(local_url), timeout=60, what="local llama-server")
        for prompt in PROMPTS:
            split_tokens, split_text = _complete(expert.url, prompt)
            local_tokens, local_text = _complete(local_url, prompt)
            assert split_tokens == local_tokens, (prompt, split_text, local_text)
            assert split_text == local_text and len(split_tokens) == 32
    finally:
        os.killpg(local.pid, signal.SIGKILL)
        local.wait(10)
    rc.client.stop_job("llama-expert")
    # Freed by the expert, the workers are offered for discovery again, and none was restarted while busy.
    wait_for(lambda: len(rc.client.healthy_services("llamacpp-rpc")) == 2, timeout=30, what="workers free again")
    allocs = rc.client.job_allocations("llamacpp-rpc")
    assert [a["TaskStates"]["ggml-rpc-server"]["Restarts"] for a in allocs] == [0, 0]
    rc.client.stop_job("llamacpp-rpc")
