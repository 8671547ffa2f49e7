"""Benchmark: the default model straight from llama-server vs through the gateway and the agent, side by side.

Starts the real embedded stack with `fleetmind up` (packaged SmolLM2 unless --model says otherwise), then streams
the same prompts alternately to the expert's llama-server and to the gateway with the official openai client, and
prints time-to-first-token and decode tokens/s for both, with the ratio gateway / direct. Run from the repo root:
``python -m bench.llm_gateway`` (``make bench``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import openai
from tests.e2e.launcher import start_stack, stop_stack

PROMPTS = [
    "What is the capital of France?",
    "Name three colours of the rainbow.",
    "Write one sentence about the sea.",
    "What is two plus two?",
    "Give me a short greeting.",
]


def measure(client: openai.OpenAI, model: str, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """One streamed request: (seconds to first token, decode tokens/s after it, completion tokens)."""
    t0 = time.perf_counter()
    first: float | None = None
    tokens = 0
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter()
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    end = time.perf_counter()
    if first is None:
        raise RuntimeError(f"no text came back from {model}")
    decode = (tokens - 1) / (end - first) if tokens > 1 and end > first else float("nan")
    return first - t0, decode, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalogue name or GGUF path")
    parser.add_argument("--rounds", type=int, default=4, help="passes over the prompts")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), args.model, timeout=180)
        try:
            direct = openai.OpenAI(
                base_url=f"http://127.0.0.1:{stack.ports['expert']}/v1", api_key="none", max_retries=0
            )
            gateway = openai.OpenAI(base_url=stack.base_url, api_key=stack.key, max_retries=0)
            results: dict[str, list[tuple[float, float, int]]] = {"direct": [], "gateway": []}
            measure(direct, "general", PROMPTS[0], 8)  # warm-up, not counted
            measure(gateway, "fleetmind", PROMPTS[0], 8)
            paths = {"direct": (direct, "general"), "gateway": (gateway, "fleetmind")}
            for round_no in range(args.rounds):
                for i, prompt in enumerate(PROMPTS):
                    # Interleaved, and which path goes first alternates: the first to send a prompt is the one
                    # that misses llama-server's prompt cache.
                    order = ["direct", "gateway"] if (round_no + i) % 2 == 0 else ["gateway", "direct"]
                    for path in order:
                        client, model = paths[path]
                        results[path].append(measure(client, model, prompt, args.max_tokens))
        finally:
            stop_stack(stack)

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]

    print(f"model {args.model}, {len(results['direct'])} streamed requests per path, max_tokens {args.max_tokens}")
    print(f"{'path':<10}{'TTFT p50 ms':>14}{'TTFT p95 ms':>14}{'decode tok/s p50':>19}")
    summary = {}
    for path, rows in results.items():
        ttft = [r[0] * 1000 for r in rows]
        tps = [r[1] for r in rows if r[1] == r[1]]
        summary[path] = (statistics.median(ttft), p(ttft, 95), statistics.median(tps))
        print(f"{path:<10}{summary[path][0]:>14.1f}{summary[path][1]:>14.1f}{summary[path][2]:>19.1f}")
    d, g = summary["direct"], summary["gateway"]
    print(f"ratio gateway/direct: TTFT p50 {g[0] / d[0]:.2f}x (+{g[0] - d[0]:.1f} ms), tokens/s {g[2] / d[2]:.3f}x")


if __name__ == "__main__":
    main()
