"""memory: remember and recall by meaning with real all-MiniLM-L6-v2 embeddings; the store survives a new runner."""

from __future__ import annotations

from pathlib import Path

from fleetmind.tools.base import ToolContext
from fleetmind.tools.runner import ToolRunner

from .conftest import MakeRunner, run_ok


async def test_remember_then_recall_by_meaning(
    make_runner: MakeRunner, context: ToolContext, embeddings_url: str, tmp_path: Path
) -> None:
    context.embeddings_url = embeddings_url
    runner = make_runner()
    facts = [
        "The backup server is in the basement next to the boiler.",
        "Alice prefers green tea in the morning.",
        "Node pc-07 has a failing hard drive.",
    ]
    for fact in facts:
        out = await run_ok(runner, "memory", {"action": "remember", "text": fact, "conversation_id": "c1"})
        assert out["remembered"] == fact
    recall = await run_ok(runner, "memory", {"action": "recall", "text": "which machine has a broken disk?", "k": 2})
    assert recall["memories"][0]["text"] == facts[2] and len(recall["memories"]) == 2
    assert recall["memories"][0]["score"] >= recall["memories"][1]["score"]
    await context.extra["memory_store"].embedder.aclose()
    # a fresh context over the same folder (a restart) still knows
    fresh = ToolContext(workspace=context.workspace, memory_dir=context.memory_dir, embeddings_url=embeddings_url)
    restarted = ToolRunner(runner.registry, context=fresh, audit=runner.audit)
    again = await run_ok(restarted, "memory", {"action": "recall", "text": "where is the backup machine?", "k": 1})
    assert again["memories"][0]["text"] == facts[0]
    await fresh.extra["memory_store"].embedder.aclose()


async def test_memory_without_an_embedder_says_so(runner: ToolRunner) -> None:
    outcome = await runner.run("memory", {"action": "recall", "text": "x"}, requester="t")
    assert outcome.status == "error" and "EMBEDDINGS_URL" in (outcome.error or "")
    bad = await runner.run("memory", {"action": "forget", "text": "x"}, requester="t")
    assert bad.status == "invalid_arguments"
