"""Helpers shared by the agent and web tests: requests, a direct llama-server client, and a hung endpoint."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from fleetmind.contracts.protocol import AgentEvent, AgentRequest, ChatMessage, SamplingParams

DETERMINISTIC = SamplingParams(temperature=0.0, seed=42, max_tokens=16)


def make_request(text: str, **kwargs: Any) -> AgentRequest:
    kwargs.setdefault("params", DETERMINISTIC)
    return AgentRequest(messages=[ChatMessage(role="user", content=text)], **kwargs)


def direct_completion(url: str, text: str, params: SamplingParams = DETERMINISTIC) -> tuple[str, dict[str, Any]]:
    """Stream the same request straight from llama-server: (text, usage)."""
    body = {
        "messages": [{"role": "user", "content": text}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **params.model_dump(exclude_none=True),
    }
    out, usage = [], {}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            for choice in chunk.get("choices") or []:
                out.append((choice.get("delta") or {}).get("content") or "")
            usage = chunk.get("usage") or usage
    return "".join(out), usage


async def collect(events: AsyncIterator[AgentEvent]) -> list[AgentEvent]:
    return [e async for e in events]


@dataclass
class HungServer:
    """A TCP endpoint that accepts connections and never answers: an expert that hangs."""

    url: str
    accepted: threading.Event = field(default_factory=threading.Event)
    got_request: threading.Event = field(default_factory=threading.Event)
    closed_by_client: threading.Event = field(default_factory=threading.Event)


@contextmanager
def run_hung_server() -> Iterator[HungServer]:
    """Serve a :class:`HungServer` until the block ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    server = HungServer(url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()
    conns: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def drain(conn: socket.socket) -> None:
        while not stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""  # an abortive close is a close too
            except OSError:
                break
            if not data:  # the client closed its side: the expert call was given up
                server.closed_by_client.set()
                break
            server.got_request.set()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.settimeout(0.2)  # so the drain thread notices ``stop``
            conns.append(conn)
            server.accepted.set()
            worker = threading.Thread(target=drain, args=(conn,), daemon=True)
            threads.append(worker)
            worker.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        stop.set()
        acceptor.join(timeout=5)
        for worker in threads:  # sockets are closed only once no thread uses them
            worker.join(timeout=5)
        for conn in conns:
            conn.close()
        listener.close()


def direct_chat(url: str, messages: list[dict[str, Any]], params: SamplingParams = DETERMINISTIC) -> str:
    """The text llama-server streams for exactly these messages (streamed like the agent's calls, so a random
    model's broken UTF-8 comes out the same way)."""
    body = {"messages": messages, "stream": True, **params.model_dump(exclude_none=True)}
    out = []
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            for choice in json.loads(line[5:]).get("choices") or []:
                out.append((choice.get("delta") or {}).get("content") or "")
    return "".join(out)
