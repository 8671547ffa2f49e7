"""An expert split over ``ggml-rpc-server`` workers on two other test hosts answers token for token like the same
model served locally (temperature 0), across a shaped link: the path ``python -m bench.rpc_hosts`` measures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from bench.rpc_hosts import WORKER_PORT, memory_fits, serve

from fleetmind.cluster.embedded import memlimit
from fleetmind.llm import binaries
from fleetmind.llm.models import resolve
from tests.netns.hosts import LAN_100M, Host, host_net, wait_tcp

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time"]


def _answer(url: str, prompt: str) -> list[int]:
    body = {"prompt": prompt, "n_predict": 24, "temperature": 0, "seed": 7, "cache_prompt": False}
    r = httpx.post(f"{url}/completion", json={**body, "return_tokens": True, "ignore_eos": True}, timeout=120)
    r.raise_for_status()
    return list(r.json()["tokens"])


def _rx_bytes(host: Host) -> int:
    shown = json.loads(host.run("ip", "-s", "-j", "link", "show", "dev", "eth0", check=True).stdout)
    return int(shown[0]["stats64"]["rx"]["bytes"])


def test_a_split_expert_answers_like_the_local_one(tiny_model: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")  # never taken under make test, which runs as root
    with host_net(3, tmp_path / "net") as net:
        w1, w2, expert = net.hosts
        net.shape(LAN_100M)
        for w in (w1, w2):
            log = tmp_path / f"{w.name}.log"
            proc = w.start(str(binaries.rpc_server()), "-H", w.ip, "-p", str(WORKER_PORT), "-t", "1", log=log)
            wait_tcp(w, w.ip, WORKER_PORT, proc=proc, log=log)
        answers: dict[str, list[list[int]]] = {}
        received: dict[str, list[int]] = {}
        for name, rpc in (("local", []), ("split", [w.reach(WORKER_PORT) for w in (w1, w2)])):
            before = [_rx_bytes(w) for w in (w1, w2)]
            url, _, proc = serve(expert, tiny_model, 1, rpc, tmp_path, name)
            try:
                answers[name] = [_answer(url, p) for p in PROMPTS]
            finally:
                expert.stop(proc)
            received[name] = [_rx_bytes(w) - b for w, b in zip((w1, w2), before, strict=True)]
        # the layers went to both workers over their links (and nothing did while serving locally)
        assert all(n > 50_000 for n in received["split"]), received
        assert all(n < 50_000 for n in received["local"]), received
        assert all(len(a) == 24 for a in answers["local"])
        assert answers["split"] == answers["local"]


def test_a_model_too_big_for_one_hosts_memory_serves_split_over_two(tmp_path: Path) -> None:
    """When a split pays: under the same memory limit on every host (a memory cgroup; weights loaded without mmap,
    so they must be resident), the packaged SmolLM2 (94 MiB file) is killed loading on one host, and serves split
    over ggml-rpc-server workers on the two others, token for token like the unlimited local one (temperature 0).
    Memory, not time: at -c 2048 a local server peaks near 185 MiB, the split one near 94 and the workers near 65
    and 86, so 128 MiB leaves tens of MiB either way."""
    if os.geteuid() != 0:
        pytest.skip("needs root")  # never taken under make test, which runs as root
    assert memlimit.available(), "the memory limit needs a writable memory cgroup (/sys/fs/cgroup)"
    limit = 128
    model = resolve("smollm2-135m-instruct")
    with host_net(3, tmp_path / "net") as net:
        fits = memory_fits(net, model, limit, tmp_path, n_predict=16, prompts=PROMPTS, worker_counts=(2,))
    reference, local, split = fits
    assert reference.served and reference.peak_mb["llama-server"] > limit  # it really does not fit in the limit
    assert not local.served and "OOM-killed while loading" in local.why, local
    assert split.served, split
    assert split.identical == split.answers == len(PROMPTS)
    assert all(0 < peak <= limit for peak in split.peak_mb.values()), split.peak_mb
