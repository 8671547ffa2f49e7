"""The aiohttp sessions to llama-server: a kept-alive connection the server drops as it is reused costs the
embedding a second try, not an error; a streamed answer gets its own connection each time (llama-server closes it
after the stream), so answers one after another all arrive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from fleetmind.contracts.protocol import AgentRequest, ChatMessage
from fleetmind.llm.chat import Completion, Expert, ExpertClient, TextDelta
from fleetmind.llm.embeddings import LlamaEmbedder

pytestmark = pytest.mark.asyncio

EMBEDDING = {"data": [{"index": 0, "embedding": [1.0] + [0.0] * 383}]}


@pytest.fixture
async def dropping_server() -> AsyncIterator[tuple[str, list[str]]]:
    """Answers the first request on each connection and keeps it alive; a second request on that connection is
    read and then the connection is closed without an answer (what a server whose keep-alive ran out does)."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
                length = int({k.strip().lower(): v for k, v in headers.items()}[b"content-length"])
                await reader.readexactly(length)
                seen.append("dropped" if answered else "answered")
                if answered:
                    break
                body = json.dumps(EMBEDDING).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                answered = True
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


async def test_an_embedding_on_a_connection_the_server_drops_is_asked_again(
    dropping_server: tuple[str, list[str]],
) -> None:
    url, seen = dropping_server
    embedder = LlamaEmbedder(url)
    try:
        first = await embedder.embed(["one"])
        second = await embedder.embed(["two"])  # reuses the kept-alive connection: dropped, then asked again
    finally:
        await embedder.aclose()
    assert seen == ["answered", "dropped", "answered"]
    assert first.shape == second.shape == (1, 384)


async def test_streamed_answers_one_after_another_each_arrive(llama_server_url: str) -> None:
    client = ExpertClient()
    expert = Expert("general", llama_server_url)
    try:
        for i in range(4):
            request = AgentRequest(model="general", messages=[ChatMessage(role="user", content=f"Say hi, {i}.")])
            request.params.max_tokens = 4
            items = [item async for item in client.stream_chat(expert, request)]
            assert isinstance(items[-1], Completion), items
            assert items[-1].usage.completion_tokens >= 1
            assert all(isinstance(item, TextDelta) for item in items[:-1])
    finally:
        await client.aclose()
