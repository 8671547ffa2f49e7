"""Fixtures for the agent tests: running AgentRuntimes, a hung endpoint and a dead one."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from agent_testkit import HungServer, run_hung_server

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings


@pytest.fixture
def hung_server() -> Iterator[HungServer]:
    with run_hung_server() as server:
        yield server


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens (a port bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest_asyncio.fixture
async def make_runtime() -> AsyncIterator[Callable[..., Any]]:
    """Start AgentRuntimes with the given settings; every one is stopped at teardown."""
    started: list[AgentRuntime] = []

    async def factory(**settings: Any) -> AgentRuntime:
        runtime = AgentRuntime(settings=AgentSettings(**settings))
        await runtime.start()
        started.append(runtime)
        return runtime

    yield factory
    for runtime in started:
        await runtime.stop()


@pytest.fixture(scope="session")
def embeddings_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``llama-server --embedding`` on the packaged all-MiniLM-L6-v2, converted to GGUF for this session."""
    from fleetmind.llm.embeddings import EmbeddingServer

    server = EmbeddingServer(tmp_path_factory.mktemp("minilm"), log=tmp_path_factory.mktemp("emb") / "server.log")
    server.start()
    yield server.url
    server.stop()
