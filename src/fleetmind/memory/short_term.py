"""Short-term memory: the recent messages of each conversation, bounded in length and in count.

Each conversation keeps its last ``max_messages`` messages; older ones are handed back by :meth:`extend` so the
agent can fold them into the conversation's running summary (:meth:`summary`/:meth:`set_summary`), which is how a
long conversation stays short without forgetting its beginning. The least recently used conversation is forgotten
when there are more than ``max_conversations``. It lives in memory and goes into the agent's saved state
(:meth:`dump`/:meth:`restore`, the summary as a leading system message named ``summary``), not into the long-term
store.

A conversation belongs to an owner (the API key id whose requests made it; None for requests nobody owns): the same
conversation id under two owners is two conversations, so a key can neither read nor extend another key's by
guessing its id. Every method takes ``owner``; :meth:`entries` and :meth:`replace` serve whole-state save/load.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from fleetmind.contracts.names import ANY_OWNER
from fleetmind.contracts.protocol import ChatMessage

SUMMARY_NAME = "summary"

_Key = tuple[str | None, str]


class ConversationHistory:
    """Recent messages per conversation id."""

    def __init__(self, *, max_messages: int = 40, max_conversations: int = 1000) -> None:
        if max_messages < 1 or max_conversations < 1:
            raise ValueError("max_messages and max_conversations must be at least 1")
        self.max_messages = max_messages
        self.max_conversations = max_conversations
        self._conversations: OrderedDict[_Key, deque[ChatMessage]] = OrderedDict()
        self._summaries: dict[_Key, str] = {}

    def get(self, conversation_id: str, *, owner: str | None = None) -> list[ChatMessage]:
        messages = self._conversations.get((owner, conversation_id))
        return list(messages) if messages is not None else []

    def extend(
        self, conversation_id: str, messages: Iterable[ChatMessage], *, owner: str | None = None
    ) -> list[ChatMessage]:
        """Append ``messages``; returns the oldest ones pushed out by the bound, oldest first."""
        key = (owner, conversation_id)
        history = self._conversations.get(key)
        if history is None:
            history = self._conversations[key] = deque()
        self._conversations.move_to_end(key)
        history.extend(messages)
        evicted = [history.popleft() for _ in range(max(0, len(history) - self.max_messages))]
        while len(self._conversations) > self.max_conversations:
            forgotten, _ = self._conversations.popitem(last=False)
            self._summaries.pop(forgotten, None)
        return evicted

    def summary(self, conversation_id: str, *, owner: str | None = None) -> str | None:
        return self._summaries.get((owner, conversation_id))

    def set_summary(self, conversation_id: str, text: str, *, owner: str | None = None) -> None:
        if (owner, conversation_id) in self._conversations:
            self._summaries[(owner, conversation_id)] = text

    def __len__(self) -> int:
        return len(self._conversations)

    def _dumped(self, key: _Key, msgs: Iterable[ChatMessage]) -> list[dict[str, Any]]:
        lead = [{"role": "system", "name": SUMMARY_NAME, "content": s}] if (s := self._summaries.get(key)) else []
        return lead + [m.model_dump(exclude_none=True) for m in msgs]

    def dump(self, *, owner: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """``owner``'s conversations (least recently used first), each with its summary leading."""
        return {cid: self._dumped((o, cid), msgs) for (o, cid), msgs in self._conversations.items() if o == owner}

    def entries(self, *, owner: str | None = ANY_OWNER) -> list[dict[str, Any]]:
        """``{"id", "owner", "messages"}`` per conversation of ``owner`` (default: everyone's), for saved state."""
        return [
            {"id": cid, "owner": o, "messages": self._dumped((o, cid), msgs)}
            for (o, cid), msgs in self._conversations.items()
            if owner == ANY_OWNER or o == owner
        ]

    @staticmethod
    def parse(raw: list[dict[str, Any]]) -> tuple[str, list[ChatMessage]]:
        """(summary, messages) of a dumped conversation; pydantic's ValidationError (a ValueError) if it is not."""
        messages = [ChatMessage.model_validate(m) for m in raw]
        if messages and messages[0].role == "system" and messages[0].name == SUMMARY_NAME:
            return messages[0].content or "", messages[1:]
        return "", messages

    def replace(
        self, conversations: Iterable[tuple[str | None, str, str, list[ChatMessage]]], *, owner: str | None = ANY_OWNER
    ) -> None:
        """Put ``(owner, id, summary, messages)`` in place of ``owner``'s conversations (default: everyone's)."""
        for key in [k for k in self._conversations if owner == ANY_OWNER or k[0] == owner]:
            del self._conversations[key]
            self._summaries.pop(key, None)
        for o, cid, summary, messages in conversations:
            self.extend(cid, messages, owner=o)
            if summary:
                self.set_summary(cid, summary, owner=o)

    def restore(self, data: dict[str, list[dict[str, Any]]], *, owner: str | None = None) -> None:
        """Replace everything with :meth:`dump`'s output, owned by ``owner``; nothing changes if it is invalid."""
        parsed = [(owner, cid, *self.parse(raw)) for cid, raw in data.items()]
        self.replace(parsed)
