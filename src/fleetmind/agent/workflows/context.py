"""What a workflow step sees: the request, the agent's services, and what earlier steps left behind.

:class:`AgentServices` is built once per TwinService (experts, the HTTP client, memory, the router);
:class:`StepContext` once per request. Steps communicate only through the context: ``messages`` is what will be
sent to the expert (steps may add to it, e.g. recalled memories), ``plan`` the route, ``answer`` and
``completion`` what the expert produced, ``responded`` whether the request has had its final frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fleetmind.agent.experts import ExpertDirectory
from fleetmind.agent.frames import AgentOutputFrame
from fleetmind.agent.routing import RoutePlan
from fleetmind.contracts.protocol import AgentRequest, ChatMessage
from fleetmind.llm.chat import Completion, Expert, ExpertClient
from fleetmind.llm.embeddings import Embedder, normalize

if TYPE_CHECKING:
    from fleetmind.agent.semantic import SemanticRouter
    from fleetmind.memory.long_term import LongTermMemory, MemoryHit
    from fleetmind.memory.short_term import ConversationHistory
    from fleetmind.tools.approvals import ApprovalBroker
    from fleetmind.tools.runner import ToolRunner

Emit = Callable[[AgentOutputFrame], Awaitable[None]]


@dataclass
class AgentServices:
    """The long-lived parts a step may use; memory, the semantic router, tools and approvals are optional."""

    directory: ExpertDirectory
    client: ExpertClient
    default_expert: str = "general"
    memory: LongTermMemory | None = None
    history: ConversationHistory | None = None
    router: SemanticRouter | None = None
    tools: ToolRunner | None = None
    approvals: ApprovalBroker | None = None
    # the one embedder memory and the router share (StepContext.query_vector embeds each request's query once)
    embedder: Embedder | None = None


@dataclass
class StepContext:
    """One request's state while its workflow runs."""

    request: AgentRequest
    services: AgentServices
    emit: Emit
    messages: list[ChatMessage] = field(default_factory=list)
    plan: RoutePlan | None = None
    route_reason: str | None = None
    expert: Expert | None = None
    answer: list[str] = field(default_factory=list)
    completion: Completion | None = None
    recalled: list[MemoryHit] = field(default_factory=list)
    responded: bool = False
    vars: dict[str, Any] = field(default_factory=dict)
    _query_vector: asyncio.Future[np.ndarray] | None = field(default=None, repr=False)

    @property
    def request_id(self) -> str:
        return self.request.id

    @property
    def conversation_id(self) -> str | None:
        return self.request.conversation_id

    def query_vector(self) -> asyncio.Future[np.ndarray]:
        """The embedding of the user's last message: one embedding call per request, made on first use and shared
        by every step that searches by meaning (recall, routing, the tool offer, remember). Awaiting it raises
        EmbeddingError when the embedding server fails (each step decides what that means for it); ValueError
        when the agent has no embedder."""
        if self._query_vector is None:
            services = self.services
            embedder = services.embedder or (services.router.embedder if services.router else None)
            embedder = embedder or (services.memory.embedder if services.memory else None)
            if embedder is None:
                raise ValueError("the agent has no embedder: nothing is searched by meaning")
            text = self.last_user_text()

            async def embed() -> np.ndarray:
                return normalize(await embedder.embed([text]))[0]

            self._query_vector = asyncio.ensure_future(embed())
        return self._query_vector

    def last_user_text(self) -> str:
        for message in reversed(self.request.messages):
            if message.role == "user" and message.content:
                return message.content
        return ""

    def previous_user_text(self) -> str | None:
        """The user's question before the last one (its history came with the request or was loaded)."""
        asked = [m.content for m in self.messages if m.role == "user" and m.content]
        return asked[-2] if len(asked) > 1 else None
