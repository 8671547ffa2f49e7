"""Short-term memory: the recent messages of each conversation, bounded in length and in count.

Each conversation keeps its last ``max_messages`` messages; older ones are handed back by :meth:`extend` so the
agent can fold them into the conversation's running summary (:meth:`summary`/:meth:`set_summary`), which is how a
long conversation stays short without forgetting its beginning. The least recently used conversation is forgotten
when there are more than ``max_conversations``. It lives in memory and goes into the agent's saved state
(:meth:`dump`/:meth:`restore`, the summary as a leading system message named ``summary``), not into the long-term
store.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from fleetmind.agent.protocol import ChatMessage

SUMMARY_NAME = "summary"


class ConversationHistory:
    """Recent messages per conversation id."""

    def __init__(self, *, max_messages: int = 40, max_conversations: int = 1000) -> None:
        if max_messages < 1 or max_conversations < 1:
            raise ValueError("max_messages and max_conversations must be at least 1")
        self.max_messages = max_messages
        self.max_conversations = max_conversations
        self._conversations: OrderedDict[str, deque[ChatMessage]] = OrderedDict()
        self._summaries: dict[str, str] = {}

    def get(self, conversation_id: str) -> list[ChatMessage]:
        messages = self._conversations.get(conversation_id)
        return list(messages) if messages is not None else []

    def extend(self, conversation_id: str, messages: Iterable[ChatMessage]) -> list[ChatMessage]:
        """Append ``messages``; returns the oldest ones pushed out by the bound, oldest first."""
        history = self._conversations.get(conversation_id)
        if history is None:
            history = self._conversations[conversation_id] = deque()
        self._conversations.move_to_end(conversation_id)
        history.extend(messages)
        evicted = [history.popleft() for _ in range(max(0, len(history) - self.max_messages))]
        while len(self._conversations) > self.max_conversations:
            forgotten, _ = self._conversations.popitem(last=False)
            self._summaries.pop(forgotten, None)
        return evicted

    def summary(self, conversation_id: str) -> str | None:
        return self._summaries.get(conversation_id)

    def set_summary(self, conversation_id: str, text: str) -> None:
        if conversation_id in self._conversations:
            self._summaries[conversation_id] = text

    def __len__(self) -> int:
        return len(self._conversations)

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for cid, msgs in self._conversations.items():
            lead = [{"role": "system", "name": SUMMARY_NAME, "content": s}] if (s := self._summaries.get(cid)) else []
            out[cid] = lead + [m.model_dump(exclude_none=True) for m in msgs]
        return out

    def restore(self, data: dict[str, list[dict[str, Any]]]) -> None:
        self._conversations.clear()
        self._summaries.clear()
        for cid, raw in data.items():
            messages = [ChatMessage.model_validate(m) for m in raw]
            if messages and messages[0].role == "system" and messages[0].name == SUMMARY_NAME:
                summary, messages = messages[0].content or "", messages[1:]
            else:
                summary = ""
            self.extend(cid, messages)
            if summary:
                self.set_summary(cid, summary)
