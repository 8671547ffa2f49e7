"""An expert killed in the middle of its answer: the next expert continues the same answer (assistant prefill)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from tests.agent.agent_testkit import make_request
from tests.conftest import free_port, start_llama_server, stop_process

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.contracts.protocol import AgentRequest, ChatMessage, SamplingParams
from fleetmind.llm.chat import Expert, ExpertClient, StreamItem


class RecordingClient(ExpertClient):
    """The real client, noting which request went to which expert: what reached each model."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, AgentRequest]] = []

    async def stream_chat(self, expert: Expert, request: AgentRequest) -> AsyncGenerator[StreamItem, None]:
        self.sent.append((expert.name, request))
        async with contextlib.aclosing(super().stream_chat(expert, request)) as stream:
            async for item in stream:
                yield item


@pytest.mark.slow
async def test_killing_the_chosen_expert_mid_answer_still_yields_an_answer(
    packaged_model: Path, packaged_llama_server_url: str, tmp_path: Path
) -> None:
    port = free_port()
    doomed = start_llama_server(packaged_model, port, tmp_path / "doomed.log", "-t", "1")
    client = RecordingClient()
    settings = AgentSettings(experts=f"general=http://127.0.0.1:{port},backup={packaged_llama_server_url}")
    runtime = AgentRuntime(settings=settings, client=client)
    await runtime.start()
    try:
        request = make_request(
            "Tell me a long story about a dragon who learns to read.",
            params=SamplingParams(temperature=0, seed=1, max_tokens=160),
        )
        events = []
        async for event in runtime.submit(request):
            events.append(event)
            if len(events) == 1:
                assert event.type == "delta" and event.expert == "general"
                os.killpg(doomed.pid, signal.SIGKILL)  # the chosen expert dies with its answer half-written
    finally:
        stop_process(doomed)
        await runtime.stop()
        await client.aclose()

    done = events[-1]
    assert done.type == "done", done
    assert done.expert == "backup"
    from_general = "".join(e.text for e in events if e.type == "delta" and e.expert == "general")
    from_backup = "".join(e.text for e in events if e.type == "delta" and e.expert == "backup")
    assert from_general and from_backup
    # what reached the backup: the same conversation, plus what general had said as an assistant message to continue
    (to_general, first), (to_backup, second) = client.sent
    assert (to_general, to_backup) == ("general", "backup")
    assert second.messages[:-1] == first.messages
    assert second.messages[-1] == ChatMessage(role="assistant", content=from_general)
    # a continuation, not a second answer: the backup does not start over with what general already said
    assert not from_backup.startswith(from_general.strip())
    assert len(from_general + from_backup) > len(from_general)
    health = {h.name: h for h, _ in runtime.directory.snapshot()}
    # (whether general still counts as cooling down depends on how long the backup took: on a loaded box longer)
    assert health["general"].failed == 1 and health["general"].last_error
    assert health["backup"].served == 1 and health["backup"].failed == 0


def test_the_prefill_echo_is_dropped_across_chunks() -> None:
    from fleetmind.agent.workflows.steps import _skip_echo

    assert _skip_echo("Once upon a time, in a land", "Once upon a time, in a") == (" land", "")
    assert _skip_echo("Once upon", "Once upon a time") == ("", " a time")
    assert _skip_echo(" land", "") == (" land", "")
    assert _skip_echo(" land", "Once") == (" land", "")  # a server that does not echo
