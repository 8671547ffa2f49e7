"""The wire format between the gateway (or any front end) and the agent process.

A front end POSTs an :class:`AgentRequest` to the agent's ``/api/agent/chat`` and reads back newline-delimited
JSON :class:`AgentEvent` objects: ``delta`` events with text as the expert produces it, then exactly one
``done`` (with finish reason, real token usage and which expert answered) or one ``error``. The request's
``id`` is the correlation id that ties a request to its answer inside the pipeline, so many requests can be in
flight at once.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from fleetmind.contracts.errors import AgentErrorCode
from fleetmind.contracts.names import ROUTED_MODEL

Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    role: Role
    content: str | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class SamplingParams(BaseModel):
    """What the caller asked of the generation; ``None`` means the expert's default."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    stop: list[str] | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    # OpenAI's penalties; llama-server takes them under the same names
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)


class AgentRequest(BaseModel):
    id: str = Field(default_factory=lambda: "req-" + uuid.uuid4().hex)
    messages: list[ChatMessage] = Field(min_length=1)
    # "fleetmind" lets the agent route; an expert's name sends the request to that expert.
    model: str = ROUTED_MODEL
    params: SamplingParams = Field(default_factory=SamplingParams)
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    # Ties requests into one conversation: the agent keeps its short-term history under this id, so a caller
    # may send only the new message. None: the request stands alone (the caller sends the whole history).
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200)
    # Whose request this is (an API key's id), set by the server that authenticated the caller, never taken from a
    # body: what the agent learns from an owner's messages is recalled only for that owner.
    owner: str | None = Field(default=None, max_length=200)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class AgentEvent(BaseModel):
    type: Literal["delta", "done", "error"]
    id: str
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    expert: str | None = None
    # for errors: a machine code (fleetmind.contracts.errors.AgentErrorCode says what each means) and a message
    code: AgentErrorCode | None = None
    message: str | None = None
