"""Benchmark: are short factual answers right, and how long do they run, per generation setting and through the agent.

A fixed set of 16 one-line factual questions with expected answers (right when an accepted word appears in the
answer, after lower-casing and dropping punctuation), plus two open prompts that tend to loop (a haiku, a story).
It asks the packaged SmolLM2 (1) straight from llama-server with the server's own defaults (no sampling field
sent: temperature 0.8, no max_tokens, no repetition control), (2) straight with each candidate setting (``--sweep``)
or with the general expert's defaults from experts.yaml, and (3) through the default stack ``fleetmind up`` starts
(gateway → agent → default workflow → expert, model "fleetmind", no sampling field sent, so the experts' defaults
apply). Every path gets the general expert's system prompt, so only the settings differ. Stochastic settings (and
the agent) run ``--rounds`` times. Prints right/total and the median and largest answer length in tokens per
setting side by side, then the issue's goal lines (agent right at least as often as direct with the server's
defaults; no agent answer past 200 tokens).

Run from the repo root: ``python -m bench.answers`` (the default stack: direct with the server's defaults, direct
with the general expert's defaults, and the agent; ``make bench``), or ``python -m bench.answers --sweep`` (every
candidate setting, on a llama-server started here: how experts.yaml's defaults were chosen).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import free_port, start_llama_server, stop_process

from fleetmind.agent.profiles import profile
from fleetmind.llm import binaries
from fleetmind.llm.models import DEFAULT_MODEL, resolve
from fleetmind.security.service import bearer, secret_path

# (question, accepted answers): right when one of them appears as whole words in the normalised answer.
QUESTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("What is the capital of France?", ("paris",)),
    ("What is the capital of Japan?", ("tokyo",)),
    ("What is the capital of Italy?", ("rome",)),
    ("How many days are there in a week?", ("seven", "7")),
    ("How many legs does a spider have?", ("eight", "8")),
    ("What colour is the sky on a clear day?", ("blue",)),
    ("What is the largest planet in our solar system?", ("jupiter",)),
    ("Who wrote Romeo and Juliet?", ("shakespeare",)),
    ("What is the chemical formula of water?", ("h2o",)),
    ("At how many degrees Celsius does water freeze?", ("0", "zero")),
    ("What is the opposite of hot?", ("cold",)),
    ("Which animal is called the king of the jungle?", ("lion", "lions")),
    ("What gas do plants take in from the air?", ("carbon dioxide", "co2")),
    ("What is two plus two?", ("four", "4")),
    ("Who painted the Mona Lisa?", ("leonardo", "da vinci")),
    ("What is the largest ocean on Earth?", ("pacific",)),
]
# Open prompts that a small model tends to loop on: only their length is reported.
OPEN_PROMPTS = ["Write a haiku about old computers.", "Tell me a story about a lighthouse keeper."]
GOAL_TOKENS = 200

# name -> the sampling fields sent (none: llama-server's defaults)
CANDIDATES: dict[str, dict[str, Any]] = {
    "server defaults": {},
    "t0 max200": {"temperature": 0.0, "max_tokens": 200},
    "t0 rp1.1 max200": {"temperature": 0.0, "repeat_penalty": 1.1, "max_tokens": 200},
    "t0 dry0.8 max200": {"temperature": 0.0, "dry_multiplier": 0.8, "max_tokens": 200},
    "t0.2 p0.9 dry0.8 max200": {"temperature": 0.2, "top_p": 0.9, "dry_multiplier": 0.8, "max_tokens": 200},
    "t0.7 p0.9 rp1.1 max200": {"temperature": 0.7, "top_p": 0.9, "repeat_penalty": 1.1, "max_tokens": 200},
    # round 2, around the best of round 1, with room to see how long the answers want to run
    "t0 rp1.05 max400": {"temperature": 0.0, "repeat_penalty": 1.05, "max_tokens": 400},
    "t0 rp1.1 max400": {"temperature": 0.0, "repeat_penalty": 1.1, "max_tokens": 400},
    "t0 rp1.15 max400": {"temperature": 0.0, "repeat_penalty": 1.15, "max_tokens": 400},
    "t0 rp1.1 dry0.8 max400": {"temperature": 0.0, "repeat_penalty": 1.1, "dry_multiplier": 0.8, "max_tokens": 400},
    # the general expert's defaults in experts.yaml. DRY's per-request cost is its sequence breakers: llama-server
    # scans the whole vocabulary for each one when it sets up a request's sampler (SmolLM2: ~12 ms for the four
    # default breakers, ~3 ms for a newline alone)
    "t0 rp1.1 dry0.8nl max200": {
        "temperature": 0.0,
        "repeat_penalty": 1.1,
        "dry_multiplier": 0.8,
        "dry_sequence_breakers": ["\n"],
        "max_tokens": 200,
    },
    "t0 rp1.1 dry0.8 max200": {"temperature": 0.0, "repeat_penalty": 1.1, "dry_multiplier": 0.8, "max_tokens": 200},
}


def normalise(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


def is_right(answer: str, accepted: tuple[str, ...]) -> bool:
    said = normalise(answer)
    return any(normalise(a) in said for a in accepted)


@dataclass
class Row:
    """One setting's results over every round."""

    name: str
    right: list[int] = field(default_factory=list)  # right answers per round
    lengths: list[int] = field(default_factory=list)  # completion tokens of every factual answer
    open_lengths: list[int] = field(default_factory=list)  # completion tokens of every open prompt's answer
    finish: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)

    def cells(self) -> tuple[str, ...]:
        rounds = len(self.right)
        mean = statistics.mean(self.right) if self.right else 0.0
        return (
            self.name,
            f"{mean:.1f}/{len(QUESTIONS)}" + (f" ({rounds} rounds)" if rounds > 1 else ""),
            f"{statistics.median(self.lengths):.0f}" if self.lengths else "-",
            str(max(self.lengths, default=0)),
            " ".join(str(n) for n in self.open_lengths),
            str(sum(n > GOAL_TOKENS for n in self.lengths + self.open_lengths)),
            ",".join(f"{k}:{v}" for k, v in sorted(self.finish.items())),
        )


def stream(http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[str, int, str]:
    """One streamed chat completion: (text, completion tokens, finish reason)."""
    parts: list[str] = []
    tokens, finish, deltas = 0, "?", 0
    with http.stream("POST", url, json={**body, "stream": True, "stream_options": {"include_usage": True}},
                     headers=headers) as resp:  # fmt: skip
        if resp.status_code != 200:
            raise RuntimeError(f"{url} answered {resp.status_code}: {resp.read()[:300]!r}")
        for line in resp.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    parts.append(text)
                    deltas += 1
                finish = choice.get("finish_reason") or finish
            if chunk.get("usage"):
                tokens = int(chunk["usage"].get("completion_tokens") or 0)
    return "".join(parts), tokens or deltas, finish


def run_setting(
    http: httpx.Client, row: Row, url: str, model: str, fields: dict[str, Any], headers: dict[str, str], system: str
) -> None:
    """One pass of ``row``'s setting over every question and open prompt; prints the row so far when done."""
    right = 0
    for question, accepted in QUESTIONS:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        text, tokens, finish = stream(http, url, {"model": model, "messages": messages, **fields}, headers)
        row.lengths.append(tokens)
        row.finish[finish] = row.finish.get(finish, 0) + 1
        if is_right(text, accepted):
            right += 1
        else:
            row.wrong.append(f"{question} -> {text[:80]!r}")
    row.right.append(right)
    for prompt in OPEN_PROMPTS:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        _, tokens, finish = stream(http, url, {"model": model, "messages": messages, **fields}, headers)
        row.open_lengths.append(tokens)
        row.finish[finish] = row.finish.get(finish, 0) + 1
    print("  " + " | ".join(row.cells()), flush=True)  # a long run still leaves its numbers


def table(rows: list[Row]) -> None:
    head = ("setting", "right", "tokens p50", "max", "open prompts", f">{GOAL_TOKENS}", "finish")
    cells = [head, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def stochastic(fields: dict[str, Any]) -> bool:
    return fields.get("temperature", 0.8) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalogue name or GGUF path")
    parser.add_argument("--rounds", type=int, default=2, help="passes of a stochastic setting over the questions")
    parser.add_argument(
        "--sweep", action="store_true", help="every candidate setting on a llama-server started here (no stack)"
    )
    parser.add_argument("--only", action="append", help="with --sweep: only these candidate settings (repeatable)")
    parser.add_argument("--show-wrong", action="store_true", help="list the wrong answers of every setting")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    unknown = set(args.only or ()) - set(CANDIDATES)
    if unknown:
        parser.error(f"no candidate setting {sorted(unknown)} (there are: {', '.join(CANDIDATES)})")
    system = profile("general").prompt
    rows: list[Row] = []
    t0 = time.perf_counter()
    # one connection per request: llama-server may close a streamed answer's connection after it
    fresh = httpx.Limits(max_keepalive_connections=0)
    with tempfile.TemporaryDirectory(prefix="fm-answers-") as tmp, httpx.Client(timeout=300, limits=fresh) as http:
        binaries.llama_server()  # the shared-library links, before any start
        if args.sweep:
            candidates = {k: v for k, v in CANDIDATES.items() if not args.only or k in args.only}
            rows += sweep(http, Path(tmp), args.model, candidates, args.rounds, system)
        else:
            settings = {
                "server defaults": {},
                "general's defaults (experts.yaml)": profile("general").generation.payload(),
            }
            rows += run_with_stack(http, Path(tmp), args.model, settings, args.rounds, system)
    print(f"\n{len(QUESTIONS)} factual questions + {len(OPEN_PROMPTS)} open prompts, model {args.model}, "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    table(rows)
    if args.show_wrong:
        for row in rows:
            print(f"\n{row.name} wrong:\n  " + "\n  ".join(row.wrong or ["(none)"]))
    goals(rows)


def sweep(
    http: httpx.Client, tmp: Path, model: str, candidates: dict[str, dict[str, Any]], rounds: int, system: str
) -> list[Row]:
    port = free_port()
    proc = start_llama_server(resolve(model if model.endswith(".gguf") else DEFAULT_MODEL), port, tmp / "llama.log")
    rows = []
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        for name, fields in candidates.items():
            row = Row(name)
            for _ in range(rounds if stochastic(fields) else 1):
                run_setting(http, row, url, "", fields, {}, system)
            rows.append(row)
    except httpx.HTTPError:
        print((tmp / "llama.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        stop_process(proc)
    return rows


def run_with_stack(
    http: httpx.Client, tmp: Path, model: str, candidates: dict[str, dict[str, Any]], rounds: int, system: str
) -> list[Row]:
    from tests.e2e.launcher import start_stack, stop_stack

    stack = start_stack(tmp, model, timeout=240, threads=None)  # the stack as `fleetmind up` starts it
    rows: list[Row] = []
    try:
        direct = f"http://127.0.0.1:{stack.ports['expert']}/v1/chat/completions"
        expert_key = bearer(secret_path(stack.state_dir).read_text().strip())
        for name, fields in candidates.items():
            row = Row(name)
            for _ in range(rounds if stochastic(fields) else 1):
                run_setting(http, row, direct, "", fields, expert_key, system)
            rows.append(row)
        agent = Row("agent (fleetmind, expert defaults)")
        gateway = stack.base_url + "/chat/completions"
        for _ in range(rounds):
            run_setting(http, agent, gateway, "fleetmind", {}, {"Authorization": f"Bearer {stack.key}"}, system)
        rows.append(agent)
    finally:
        stop_stack(stack)
    return rows


def goals(rows: list[Row]) -> None:
    by_name = {r.name: r for r in rows}
    agent = next((r for r in rows if r.name.startswith("agent")), None)
    base = by_name.get("server defaults")
    if agent is None or base is None:
        print("\ngoals: run without --sweep to check them (through the agent of the default stack)")
        return
    a, b = statistics.mean(agent.right), statistics.mean(base.right)
    longest = max(agent.lengths + agent.open_lengths)
    print(f"\ngoal: agent right at least as often as llama-server direct with its defaults: {a:.1f} vs {b:.1f}: "
          f"{'met' if a >= b else 'NOT met'}")  # fmt: skip
    print(f"goal: no agent answer past {GOAL_TOKENS} tokens (longest {longest}): "
          f"{'met' if longest <= GOAL_TOKENS else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
