"""Benchmark: routing accuracy on a labelled query set — embedding similarity vs a classifier prompt.

64 queries written for this benchmark (32 coding, 32 general; some deliberately near the border, e.g. questions
*about* computers that need no code; 16 of them held out, written after the descriptions were fixed) are routed
(1) by :class:`~fleetmind.agent.semantic.SemanticRouter`, the query's all-MiniLM-L6-v2 embedding against each
expert's descriptions (what the agent does; also with one joined description, the first design), and (2) by a
classifier prompt to the packaged SmolLM2-135M-Instruct with a grammar that allows only "coding" or "general".
Both run on real llama-servers started here. Prints accuracy overall and per class, and the median decision
time. Run from the repo root: ``python -m bench.routing``.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from fleetmind.agent.semantic import DEFAULT_DESCRIPTIONS, SemanticRouter
from fleetmind.llm import binaries
from fleetmind.llm.chat import Expert
from fleetmind.llm.embeddings import EmbeddingServer, LlamaEmbedder, free_port
from fleetmind.llm.models import DEFAULT_MODEL, resolve

CODING = [
    "Write a Python function that reverses a linked list.",
    "Why does my JavaScript fetch call return a pending promise?",
    "How do I write a SQL query that joins two tables on user id?",
    "Fix this error: TypeError: 'NoneType' object is not subscriptable",
    "What is the time complexity of quicksort?",
    "How can I undo my last git commit without losing the changes?",
    "Write a bash script that renames all .txt files in a folder to .md",
    "Explain what a closure is in JavaScript with an example.",
    "How do I read a CSV file with pandas and drop empty rows?",
    "Implement binary search in C.",
    "What does the Rust borrow checker complain about when I mutate a vector while iterating?",
    "Write a regular expression that matches an email address.",
    "How do I make an HTTP POST request in Go?",
    "Convert this for loop into a list comprehension: for x in xs: out.append(x*2)",
    "My unit test fails with AssertionError: expected 3 but got 4, how do I debug it?",
    "What is the difference between a process and a thread in Python's multiprocessing?",
    "Write a React component that shows a counter with a button.",
    "How do I declare a generic interface in TypeScript?",
    "Segmentation fault when I free a pointer twice in C, why?",
    "Write a Dockerfile for a Flask app.",
    "How do I sort a dictionary by value in Python?",
    "Refactor this class to use dependency injection.",
    "What is a hash map and how do I implement one?",
    "Write a function to check whether a string is a palindrome.",
]
GENERAL = [
    "What is the capital city of France?",
    "How long should I boil an egg for a soft yolk?",
    "Who wrote Pride and Prejudice?",
    "What causes the seasons on Earth?",
    "Can you recommend a good book about the Roman Empire?",
    "How do I get red wine out of a carpet?",
    "What is the tallest mountain in Africa?",
    "Tell me a fun fact about octopuses.",
    "How many hours of sleep does an adult need?",
    "What's the weather usually like in Lisbon in April?",
    "Explain photosynthesis in simple words.",
    "Good morning! How are you today?",
    "What year did the Berlin Wall fall?",
    "How do I politely decline a wedding invitation?",
    "What are the symptoms of the flu?",
    "Suggest a vegetarian dinner for four people.",
    "Why is the sky blue?",
    "What is the difference between weather and climate?",
    "How do I keep basil plants alive indoors?",
    "Which planets have rings?",
    "Who invented the telephone?",
    "How should I prepare for a job interview?",
    "Is my laptop battery damaged if it gets warm while charging?",
    "What is the best way to learn a new language as an adult?",
]
# Written after the router's built-in descriptions were last changed, and never used to tune them: the
# first two sets guided the descriptions, so this set is the honest check for over-fitting.
HELD_OUT_CODING = [
    "My Python script says ModuleNotFoundError for requests, what should I do?",
    "Write a function in Java that counts the vowels in a string.",
    "How do I center a div with CSS flexbox?",
    "Explain the difference between let and const in JavaScript.",
    "Why is my recursive Fibonacci function so slow and how do I memoize it?",
    "How do I merge two branches in git when there is a conflict?",
    "Write a unit test with pytest for a function that adds two numbers.",
    "What does async and await do in C#?",
]
HELD_OUT_GENERAL = [
    "What is the population of Japan?",
    "How do I make a sourdough starter?",
    "Who painted the Mona Lisa?",
    "What should I pack for a hiking trip in the Alps?",
    "Why do cats purr?",
    "How can I improve my posture when sitting at a desk?",
    "What's a good name for a golden retriever puppy?",
    "How does a rainbow form?",
]
TUNING = [(q, "coding") for q in CODING] + [(q, "general") for q in GENERAL]
HELD_OUT = [(q, "coding") for q in HELD_OUT_CODING] + [(q, "general") for q in HELD_OUT_GENERAL]
LABELLED = TUNING + HELD_OUT

CLASSIFIER_PROMPT = (
    "You route questions to experts. Answer 'coding' if the question is about programming, source code, "
    "software development or debugging; otherwise answer 'general'."
)
GRAMMAR = 'root ::= "coding" | "general"'


def start_chat_server(model: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [str(binaries.llama_server()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["-c", "2048", "-t", "2", "--no-webui"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("llama-server did not start")


def classify(http: httpx.Client, url: str, query: str) -> str:
    body = {
        "messages": [{"role": "system", "content": CLASSIFIER_PROMPT}, {"role": "user", "content": query}],
        "temperature": 0,
        "max_tokens": 4,
        "grammar": GRAMMAR,
    }
    return str(http.post(url + "/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]).strip()


async def semantic(url: str, *, joined: bool = False) -> list[tuple[str, float]]:
    embedder = LlamaEmbedder(url)
    # joined: one long description per expert (all its texts in one), the first design, kept as a baseline
    router = SemanticRouter(
        embedder, descriptions={n: (" ".join(t),) for n, t in DEFAULT_DESCRIPTIONS.items()} if joined else None
    )
    experts = [Expert("general", "http://x"), Expert("coding", "http://y")]
    out = []
    try:
        for query, _ in LABELLED:
            t0 = time.perf_counter()
            choice = await router.choose(query, experts, lambda e: True)
            out.append((choice.expert if choice else "general", time.perf_counter() - t0))
    finally:
        await embedder.aclose()
    return out


def report(name: str, results: list[tuple[str, float]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for label, lo, hi in (("all", 0, len(LABELLED)), ("tuning", 0, len(TUNING)), ("held-out", len(TUNING), None)):
        part = list(zip(results[lo:hi], LABELLED[lo:hi], strict=True))
        right = {"coding": 0, "general": 0}
        total = {"coding": 0, "general": 0}
        for (got, _), (_, want) in part:
            right[want] += got == want
            total[want] += 1
        acc = sum(right.values()) / len(part)
        ms = statistics.median(t for (_, t), _ in part) * 1000
        rows.append(
            (
                name,
                f"{label} ({len(part)})",
                f"{acc:.3f}",
                f"{right['coding']}/{total['coding']}",
                f"{right['general']}/{total['general']}",
                f"{ms:.1f}",
            )
        )
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fm-routing-") as tmp:
        emb = EmbeddingServer(Path(tmp) / "models", log=Path(tmp) / "emb.log")
        emb.start()
        chat, chat_url = start_chat_server(resolve(DEFAULT_MODEL), Path(tmp) / "chat.log")
        try:
            sem = asyncio.run(semantic(emb.url))
            joined = asyncio.run(semantic(emb.url, joined=True))
            clf = []
            with httpx.Client(timeout=60) as http:
                for query, _ in LABELLED:
                    t0 = time.perf_counter()
                    clf.append((classify(http, chat_url, query), time.perf_counter() - t0))
        finally:
            chat.terminate()
            chat.wait(timeout=10)
            emb.stop()
    rows = [
        ("method", "queries", "accuracy", "coding", "general", "median ms"),
        *report("embedding, best of several descriptions", sem),
        *report("embedding, one joined description", joined),
        *report("classifier prompt (SmolLM2-135M)", clf),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"{len(LABELLED)} labelled queries: {len(TUNING)} that guided the descriptions, {len(HELD_OUT)} held out")
    wrong = [q for (got, _), (q, want) in zip(sem, LABELLED, strict=True) if got != want]
    if wrong:
        print("embedding misroutes:", *wrong, sep="\n  ")


if __name__ == "__main__":
    main()
