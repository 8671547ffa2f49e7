"""The loop guard: repeating text trips it, ordinary answers do not; the client ends a looping answer as "length"
and closes the stream, so the server stops generating (a streaming server that would loop forever, and the real
llama-server on the tiny model, which loops at temperature 0)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from fleetmind.contracts.protocol import AgentRequest, ChatMessage, SamplingParams
from fleetmind.llm.chat import Completion, Expert, ExpertClient, StreamItem, TextDelta
from fleetmind.llm.loop_guard import LoopGuard
from tests.conftest import serve_http

PROSE = (
    "Old computers still have a lot to give. A machine from ten years ago can serve a small language model, "
    "store files for a family, or run the tests of a project overnight. The fans are loud and the disks are slow, "
    "but with a light operating system and some patience they keep working. Putting several of them together "
    "turns a pile of forgotten boxes into a small cluster. Each node takes a part of the work; when one fails, "
    "another picks it up. The result is not fast, yet it is yours, it costs almost nothing, and it keeps useful "
    "hardware out of the landfill for a few more years. Start with one box, learn what it can do, then add the "
    "next one when you need it."
)
CODE = (
    "\n".join(f"    assert add({i}, {i + 1}) == {2 * i + 1}  # case {i}" for i in range(12))
    + "\n"
    + "\n".join(
        ["def parse(line):", "    name, _, value = line.partition('=')", "    return name.strip(), value.strip()"]
    )
)


def feed_in_pieces(guard: LoopGuard, text: str, size: int = 3) -> bool:
    return any(guard.feed(text[i : i + size]) for i in range(0, len(text), size))


def test_a_phrase_said_again_and_again_trips_the_guard() -> None:
    guard = LoopGuard()
    assert feed_in_pieces(guard, "Old keys click softly. " * 12)
    assert guard.tripped and "repeated" in guard.reason


def test_a_numbered_list_of_the_same_line_trips_it_by_low_variety() -> None:
    guard = LoopGuard()
    text = "".join(f"{i}. The old computer hums in the corner of the room.\n" for i in range(1, 40))
    assert feed_in_pieces(guard, text)
    assert "distinct trigrams" in guard.reason or "repeated" in guard.reason


@pytest.mark.parametrize("text", [PROSE, CODE, "No, no, no, I said the blue one. " + PROSE])
def test_ordinary_answers_never_trip_it(text: str) -> None:
    guard = LoopGuard()
    assert not feed_in_pieces(guard, text) and not guard.tripped and guard.reason == ""


def test_a_word_split_over_pieces_counts_once() -> None:
    guard = LoopGuard(min_repeats=3, min_span=3)
    for piece in ("ban", "ana ", "bana", "na b", "anana"):
        assert not guard.feed(piece)  # the last "banana" has no separator after it yet
    assert guard.feed(" ")


@pytest.mark.parametrize(
    "kwargs", [{"max_period": 0}, {"min_repeats": 1}, {"min_span": 1}, {"window": 5}, {"min_variety": 0}]
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LoopGuard(**kwargs)  # type: ignore[arg-type]


def chunk(text: str | None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    body = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@pytest.fixture
def endless_server() -> Iterator[tuple[str, threading.Event]]:
    """A streaming chat server that says one phrase for ever, until the client goes away (then the event is set)."""
    gone = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                for _ in range(100_000):
                    self.wfile.write(chunk("The disk spins. "))
                    self.wfile.flush()
                self.wfile.write(chunk(None, "stop") + b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                gone.set()

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Handler) as port:
        yield f"http://127.0.0.1:{port}", gone


async def collect(client: ExpertClient, expert: Expert, request: AgentRequest) -> list[StreamItem]:
    try:
        return [item async for item in client.stream_chat(expert, request)]
    finally:
        await client.aclose()


def ask(text: str, **params: object) -> AgentRequest:
    return AgentRequest(messages=[ChatMessage(role="user", content=text)], params=SamplingParams(**params))  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_looping_answer_ends_as_length_and_the_stream_is_closed(
    endless_server: tuple[str, threading.Event],
) -> None:
    url, gone = endless_server
    items = await collect(ExpertClient(), Expert("g", url), ask("Tell me about disks."))
    *deltas, end = items
    assert isinstance(end, Completion) and end.finish_reason == "length"
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert end.usage.completion_tokens == len(deltas) < 100
    # the server's next write fails: the connection was closed, not left to drain
    assert gone.wait(30)


@pytest.mark.asyncio
async def test_without_a_guard_the_same_stream_runs_to_its_end(endless_server: tuple[str, threading.Event]) -> None:
    url, gone = endless_server
    items = await collect(ExpertClient(loop_guard=None), Expert("g", url), ask("Tell me about disks."))
    assert isinstance(items[-1], Completion) and items[-1].finish_reason == "stop"
    assert len(items) == 100_001 and not gone.is_set()


@pytest.mark.asyncio
async def test_the_tiny_model_looping_is_cut_short_and_the_server_goes_idle(llama_server_url: str) -> None:
    request = ask("Write a haiku", temperature=0.0, seed=1, max_tokens=1500)
    items = await collect(ExpertClient(), Expert("g", llama_server_url), request)
    *deltas, end = items
    assert isinstance(end, Completion) and end.finish_reason == "length"
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    # the same request with no guard: what it would have said, and how far it would have run
    whole = await collect(ExpertClient(loop_guard=None), Expert("g", llama_server_url), request)
    assert isinstance(whole[-1], Completion)
    assert whole[-1].usage.completion_tokens > end.usage.completion_tokens == len(deltas)
    assert "".join(i.text for i in whole if isinstance(i, TextDelta)).startswith(text)
    async with httpx.AsyncClient(timeout=10) as http:
        slots = (await http.get(llama_server_url + "/slots")).json()
    assert not any(s["is_processing"] for s in slots)
