"""An expert's own system prompt leads a conversation that brings none, and never overrides the caller's."""

from __future__ import annotations

from fleetmind.contracts.protocol import AgentRequest, ChatMessage
from fleetmind.llm.chat import completion_payload


def test_expert_prompt_is_added_only_when_the_caller_sent_none() -> None:
    bare = AgentRequest(messages=[ChatMessage(role="user", content="hi")])
    payload = completion_payload(bare, model="general", system_prompt="Be brief.")
    assert payload["messages"][0] == {"role": "system", "content": "Be brief."}
    assert payload["messages"][1]["content"] == "hi"

    own = AgentRequest(messages=[ChatMessage(role="system", content="Mine."), ChatMessage(role="user", content="hi")])
    assert [m["content"] for m in completion_payload(own, model="general", system_prompt="Be brief.")["messages"]] == [
        "Mine.",
        "hi",
    ]
    assert len(completion_payload(bare, model="general")["messages"]) == 1
