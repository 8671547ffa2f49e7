"""Short-term memory: the recent messages of each conversation, bounded in length and in count.

Each conversation keeps its last ``max_messages`` messages; the least recently used conversation is forgotten
when there are more than ``max_conversations``. It lives in memory and goes into the agent's saved state
(:meth:`dump`/:meth:`restore`), not into the long-term store.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from fleetmind.agent.protocol import ChatMessage


class ConversationHistory:
    """Recent messages per conversation id."""

    def __init__(self, *, max_messages: int = 40, max_conversations: int = 1000) -> None:
        if max_messages < 1 or max_conversations < 1:
            raise ValueError("max_messages and max_conversations must be at least 1")
        self.max_messages = max_messages
        self.max_conversations = max_conversations
        self._conversations: OrderedDict[str, deque[ChatMessage]] = OrderedDict()

    def get(self, conversation_id: str) -> list[ChatMessage]:
        messages = self._conversations.get(conversation_id)
        return list(messages) if messages is not None else []

    def extend(self, conversation_id: str, messages: Iterable[ChatMessage]) -> None:
        history = self._conversations.get(conversation_id)
        if history is None:
            history = self._conversations[conversation_id] = deque(maxlen=self.max_messages)
        self._conversations.move_to_end(conversation_id)
        history.extend(messages)
        while len(self._conversations) > self.max_conversations:
            self._conversations.popitem(last=False)

    def __len__(self) -> int:
        return len(self._conversations)

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        return {cid: [m.model_dump(exclude_none=True) for m in msgs] for cid, msgs in self._conversations.items()}

    def restore(self, data: dict[str, list[dict[str, Any]]]) -> None:
        self._conversations.clear()
        for cid, messages in data.items():
            self.extend(cid, (ChatMessage.model_validate(m) for m in messages))
