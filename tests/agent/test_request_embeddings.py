"""A request pays for one query embedding, whatever searches by meaning: recall, routing, the tool offer and
remember share it (StepContext.query_vector). Real MiniLM embeddings, real llama-servers; the embedding server's
HTTP calls are counted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from agent_testkit import collect, make_request

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.contracts.names import ROUTED_MODEL
from fleetmind.llm.embeddings import LlamaEmbedder
from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.runner import build_runner
from fleetmind.tools.settings import ToolsSettings

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


async def test_one_embedding_call_per_request_shared_by_recall_routing_tools_and_remember(
    tmp_path: Path, llama_server_url: str, embeddings_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    fetch = LlamaEmbedder._fetch

    async def counted(self: LlamaEmbedder, texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        return await fetch(self, texts)

    monkeypatch.setattr(LlamaEmbedder, "_fetch", counted)
    runner = build_runner(
        state_dir=tmp_path / "state",
        approvals=ApprovalBroker(timeout_s=1),
        settings=ToolsSettings(workspace=tmp_path / "work"),
    )
    settings = AgentSettings(
        experts=f"general={llama_server_url},coding={llama_server_url}",
        embeddings_url=embeddings_url,
        memory_dir=tmp_path / "memory",
    )
    runtime = AgentRuntime(settings=settings, tools=runner, approvals=runner.approvals)
    await runtime.start()
    try:
        # the first request embeds the experts' and the tools' descriptions once, for every later request
        assert (await collect(runtime.submit(make_request("Hello there.", model=ROUTED_MODEL))))[-1].type == "done"
        assert runtime.memory is not None
        for text, model in (
            ("My bicycle is the green one in the shed.", ROUTED_MODEL),  # recall, routing, tools, remember
            ("What colour is my bicycle?", "general"),  # an expert named: recall and tools, no routing
        ):
            calls.clear()
            before = len(runtime.memory)
            events = await collect(runtime.submit(make_request(text, model=model)))
            assert events[-1].type == "done", events[-1]
            if not text.endswith("?"):
                # remember runs after the answer: wait until it wrote, with the request's embedding
                for _ in range(200):
                    if len(runtime.memory) > before:
                        break
                    await asyncio.sleep(0.05)
                assert len(runtime.memory) == before + 1
            assert calls == [[text]], calls
    finally:
        await runtime.stop()
