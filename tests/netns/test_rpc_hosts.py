"""An expert split over ``ggml-rpc-server`` workers on two other test hosts answers token for token like the same
model served locally (temperature 0), across a shaped link: the path ``python -m bench.rpc_hosts`` measures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from bench.rpc_hosts import WORKER_PORT, serve

from fleetmind.llm import binaries
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
