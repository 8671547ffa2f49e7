"""Benchmark: what the gateway and the agent behind it add, in front of llama-server and of a fixed-delay stub.

Two upstreams, each behind its own real agent + gateway processes, as in production:

* ``llama``: llama-server on the packaged SmolLM2 (or ``--model PATH`` to a GGUF);
* ``stub``: a tiny OpenAI-compatible server in this file that waits ``--stub-delay-ms`` and then streams
  ``--stub-tokens`` chunks ``--stub-token-ms`` apart, so that what the path adds is all there is to see.

For each upstream the same streamed request goes, interleaved, three ways: ``direct`` (the upstream's own
``/v1/chat/completions``), ``agent`` (the agent's ``/api/agent/chat``, NDJSON) and ``gateway`` (the gateway's
``/v1/chat/completions``, which goes through the agent). One plain httpx client reads them all, so client costs
are the same. Printed side by side: time to first token and total time (p50/p95, ms), what the agent and the
gateway add (gateway - direct; of that, gateway - agent is the gateway's own share), and decode tokens/s through
the gateway / direct. Run from the repo root: ``python -m bench.gateway_overhead``. Goal: <= 2 ms added p50 and
>= 0.97x tokens/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import start_llama_server, stop_process, wait_http
from tests.gateway.conftest import running_stack
from tests.gateway.gateway_helpers import Stack, free_tcp_port

PROMPTS = [
    "What is the capital of France?",
    "Name three colours of the rainbow.",
    "Write one sentence about the sea.",
    "What is two plus two?",
    "Give me a short greeting.",
]

# -- the fixed-delay upstream ----------------------------------------------------------------------------------


def stub_app(delay_s: float, tokens: int, token_s: float) -> Any:
    """An OpenAI-compatible chat endpoint that answers after ``delay_s``, one chunk per ``token_s``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def chat(request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        n = min(tokens, int(body.get("max_tokens") or tokens))
        await asyncio.sleep(delay_s)
        base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": int(time.time()), "model": "stub"}
        usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "tok " * n}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})

        async def events() -> AsyncIterator[str]:
            for i in range(n):
                if i and token_s:
                    await asyncio.sleep(token_s)
                delta = {"index": 0, "delta": {"content": "tok "}, "finish_reason": None}
                yield f"data: {json.dumps({**base, 'choices': [delta]})}\n\n"
            done = {"index": 0, "delta": {}, "finish_reason": "length"}
            yield f"data: {json.dumps({**base, 'choices': [done]})}\n\n"
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/health", health), Route("/v1/chat/completions", chat, methods=["POST"])])


def serve_stub(port: int, delay_ms: float, tokens: int, token_ms: float) -> None:
    import uvicorn

    app = stub_app(delay_ms / 1000, tokens, token_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def stub_server(tmp: Path, delay_ms: float, tokens: int, token_ms: float) -> Iterator[str]:
    import subprocess

    port = free_tcp_port()
    cmd = [sys.executable, "-m", "bench.gateway_overhead", "--serve-stub", str(port)]
    cmd += ["--stub-delay-ms", str(delay_ms), "--stub-tokens", str(tokens), "--stub-token-ms", str(token_ms)]
    with (tmp / "stub.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 30, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


# -- measuring -------------------------------------------------------------------------------------------------

Sample = tuple[float, float, int]  # (time to first token, total time, completion tokens)


def _openai_stream(client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any]) -> Sample:
    t0 = time.perf_counter()
    first: float | None = None
    tokens = 0
    with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if first is None and chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    if first is None:
        raise RuntimeError(f"no text came back from {url}")
    return first - t0, end - t0, tokens


def _agent_stream(client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any]) -> Sample:
    t0 = time.perf_counter()
    first: float | None = None
    tokens = 0
    wire = {"messages": body["messages"], "model": "fleetmind", "params": {"max_tokens": body["max_tokens"]}}
    wire["params"]["temperature"] = body["temperature"]
    with client.stream("POST", url + "/api/agent/chat", json=wire, headers=headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            if first is None and event.get("text"):
                first = time.perf_counter()
            if event["type"] == "done":
                tokens = event["usage"]["completion_tokens"]
            elif event["type"] == "error":
                raise RuntimeError(event)
    end = time.perf_counter()
    if first is None:
        raise RuntimeError(f"no text came back from {url}")
    return first - t0, end - t0, tokens


def measure_upstream(direct_url: str, stack: Stack, rounds: int, max_tokens: int) -> dict[str, list[Sample]]:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    paths: dict[str, Callable[[httpx.Client, dict[str, Any]], Sample]] = {
        "direct": lambda c, b: _openai_stream(c, direct_url, {}, b),
        "agent": lambda c, b: _agent_stream(c, stack.agent_url, headers, b),
        "gateway": lambda c, b: _openai_stream(c, stack.gateway_url, headers, b),
    }
    results: dict[str, list[Sample]] = {name: [] for name in paths}
    with httpx.Client(timeout=120) as client:
        for prompt in PROMPTS[:2]:  # warm-up: connections, prompt caches, lazy imports; not counted
            for run in paths.values():
                run(client, _body(prompt, max_tokens))
        order = list(paths.items())
        for _ in range(rounds):
            for prompt in PROMPTS:
                # interleaved so that every path sees the same machine state, and rotated so that no path is
                # always the first to send a prompt (the one that misses llama-server's prompt cache)
                order = order[1:] + order[:1]
                for name, run in order:
                    results[name].append(run(client, _body(prompt, max_tokens)))
    return results


def _body(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": "fleetmind",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(name: str, results: dict[str, list[Sample]]) -> None:
    print(f"\n== {name}: {len(results['direct'])} streamed requests per path")
    print(f"{'path':<9}{'TTFT p50':>10}{'TTFT p95':>10}{'total p50':>11}{'total p95':>11}{'decode tok/s':>14}")
    rows: dict[str, tuple[float, float, float, float, float]] = {}
    for path, samples in results.items():
        ttft = [s[0] * 1000 for s in samples]
        total = [s[1] * 1000 for s in samples]
        tps = [(s[2] - 1) / (s[1] - s[0]) for s in samples if s[2] > 1 and s[1] > s[0]]
        decode = statistics.median(tps) if tps else float("nan")
        rows[path] = (statistics.median(ttft), _pct(ttft, 95), statistics.median(total), _pct(total, 95), decode)
        r = rows[path]
        print(f"{path:<9}{r[0]:>10.2f}{r[1]:>10.2f}{r[2]:>11.2f}{r[3]:>11.2f}{r[4]:>14.1f}")
    d, a, g = rows["direct"], rows["agent"], rows["gateway"]
    print(
        f"added by agent+gateway: TTFT p50 +{g[0] - d[0]:.2f} ms, p95 +{g[1] - d[1]:.2f} ms; "
        f"total p50 +{g[2] - d[2]:.2f} ms, p95 +{g[3] - d[3]:.2f} ms"
    )
    print(
        f"  of which the gateway (gateway - agent): TTFT p50 +{g[0] - a[0]:.2f} ms, p95 +{g[1] - a[1]:.2f} ms; "
        f"the agent (agent - direct): TTFT p50 +{a[0] - d[0]:.2f} ms"
    )
    print(f"tokens/s gateway / direct: {g[4] / d[4]:.3f}x (agent / direct {a[4] / d[4]:.3f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default=None, help="GGUF path (default: the packaged SmolLM2)")
    parser.add_argument("--rounds", type=int, default=4, help="passes over the prompts")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--stub-delay-ms", type=float, default=50.0, help="the stub's wait before its first token")
    parser.add_argument("--stub-tokens", type=int, default=64)
    parser.add_argument("--stub-token-ms", type=float, default=5.0, help="the stub's pause between tokens")
    parser.add_argument("--only", choices=["llama", "stub"], default=None, help="measure one upstream only")
    parser.add_argument("--serve-stub", type=int, default=None, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub is not None:
        serve_stub(args.serve_stub, args.stub_delay_ms, args.stub_tokens, args.stub_token_ms)
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.only in (None, "stub"):
            (tmp / "stub").mkdir()
            with stub_server(tmp / "stub", args.stub_delay_ms, args.stub_tokens, args.stub_token_ms) as url:
                with running_stack(url, tmp / "stub") as stack:
                    stub = measure_upstream(url, stack, args.rounds, args.max_tokens)
            label = f"stub ({args.stub_delay_ms:g} ms to first token, {args.stub_token_ms:g} ms per token)"
            report(label, stub)
        if args.only in (None, "llama"):
            from fleetmind.llm.models import DEFAULT_MODEL, resolve

            model = Path(args.model) if args.model else resolve(DEFAULT_MODEL)
            (tmp / "llama").mkdir()
            port = free_tcp_port()
            server = start_llama_server(model, port, tmp / "llama" / "llama-server.log", "-t", "2")
            try:
                url = f"http://127.0.0.1:{port}"
                with running_stack(url, tmp / "llama") as stack:
                    llama = measure_upstream(url, stack, args.rounds, args.max_tokens)
            finally:
                stop_process(server)
            report(f"llama-server ({model.name})", llama)


if __name__ == "__main__":
    main()
