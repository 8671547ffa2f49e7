"""Fixtures for the tools tests: a runner over chosen tools with a temporary workspace and audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetmind.llm.embeddings import EmbeddingServer
from fleetmind.llm.gguf_convert import ensure_gguf
from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.base import Tool, ToolContext
from fleetmind.tools.policy import Policy
from fleetmind.tools.registry import ToolRegistry, load_entry_points
from fleetmind.tools.runner import ToolOutcome, ToolRunner, build_runner
from fleetmind.tools.settings import ToolsSettings

MakeRunner = Callable[..., ToolRunner]


@pytest.fixture
def context(tmp_path: Path) -> ToolContext:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return ToolContext(workspace=workspace.resolve(), state_dir=tmp_path, memory_dir=tmp_path / "memory")


@pytest.fixture
def make_runner(tmp_path: Path, context: ToolContext) -> MakeRunner:
    """``make_runner(*tools, policy=..., approvals=..., events=list)``; no tools given: every built-in one."""

    def make(
        *tools: Tool,
        policy: Policy | None = None,
        approvals: ApprovalBroker | None = None,
        events: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> ToolRunner:
        registry = ToolRegistry(tools or load_entry_points())
        sink = (lambda kind, payload: events.append((kind, payload))) if events is not None else None
        return build_runner(
            state_dir=tmp_path,
            approvals=approvals,
            policy=policy,
            context=context,
            on_event=sink,
            settings=ToolsSettings(),
            registry=registry,
        )

    return make


@pytest.fixture
def runner(make_runner: MakeRunner) -> ToolRunner:
    return make_runner()


async def approve_next(broker: ApprovalBroker, *, approve: bool = True, by: str = "tester") -> None:
    """Decide the first request that shows up."""
    for _ in range(1000):
        if broker.pending():
            broker.decide(broker.pending()[0].id, approve=approve, by=by)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no approval was requested")


async def run_ok(runner: ToolRunner, name: str, args: dict[str, Any], requester: str = "test") -> Any:
    outcome: ToolOutcome = await runner.run(name, args, requester=requester)
    assert outcome.status == "ok", (outcome.status, outcome.error)
    return outcome.output


@pytest.fixture(scope="session")
def embeddings_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``llama-server --embedding`` on the packaged all-MiniLM-L6-v2 converted to GGUF."""
    models = tmp_path_factory.mktemp("minilm")
    ensure_gguf(models)
    server = EmbeddingServer(models, log=tmp_path_factory.mktemp("emb") / "llama-server.log")
    server.start()
    yield server.url
    server.stop()
