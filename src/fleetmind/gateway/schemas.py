"""OpenAI's chat-completion and model shapes, as far as fleetmind honours them.

The request model declares what we can do; anything an OpenAI client may send that we cannot honour yet
(tools, logprobs, ``n > 1``, audio ...) is named in :data:`UNSUPPORTED` with the values that change nothing,
and :func:`check_supported` rejects any other value with a 400 naming the parameter -- never a silent drop.
Fields no one has heard of are ignored, because OpenAI clients add new ones all the time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fleetmind.contracts.names import ROUTED_MODEL
from fleetmind.gateway.errors import InvalidRequestError, UnsupportedParameterError
from fleetmind.llm.budget import DEFAULT_CONTEXT_TOKENS, MAX_MESSAGES, PromptTooLargeError, check_prompt
from fleetmind.security.text import unencodable_path

# parameter -> the values that ask for nothing we would have to do (a client library's explicit defaults)
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "web_search_options": (None,),
    "reasoning_effort": (None,),
    "verbosity": (None,),
    "moderation": (None,),
    "store": (None, False),
    "service_tier": (None, "auto", "default"),
}


class TextPart(BaseModel):
    """One part of a message's content; only ``text`` parts are understood, others are refused by name."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    arguments: str = Field(description="The arguments as a JSON string, as the model produced them.")


class ToolCall(BaseModel):
    """A tool call an earlier assistant turn made; checked here because llama-server fails (500) on a bad one."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class RequestMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # "developer" is what newer OpenAI clients call the system role
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``; see OpenAI's API reference for each field."""

    model_config = ConfigDict(extra="allow")

    messages: list[RequestMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    model: str = Field(default=ROUTED_MODEL, min_length=1, description="'fleetmind' or an expert.")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768, description="Wins.")
    stop: str | list[str] | None = Field(default=None, description="Up to 4 stop sequences.")
    seed: int | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, description="Only 1 is supported.")
    user: str | None = Field(default=None, description="An end-user id; accepted and not used.")

    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return [s for s in stops if s] or None

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def _harmless(value: Any, allowed: tuple[Any, ...]) -> bool:
    # bool is an int in Python: keep False from passing as 0 and the other way round (0.0 may pass as 0)
    return value is None or any(
        isinstance(value, bool) == isinstance(ok, bool) and value == ok for ok in allowed if ok is not None
    )


def check_supported(req: ChatCompletionRequest, *, context_tokens: int = DEFAULT_CONTEXT_TOKENS) -> None:
    """Raise the 400 for the first thing in ``req`` we cannot honour, a prompt too large for the context included."""
    for name, allowed in UNSUPPORTED.items():
        if req.model_extra and name in req.model_extra and not _harmless(req.model_extra[name], allowed):
            raise UnsupportedParameterError(name)
    if req.n not in (None, 1):
        raise UnsupportedParameterError("n", "Only n=1 is supported by fleetmind; ask once per completion.")
    if req.response_format is not None and req.response_format.type == "json_schema":
        raise UnsupportedParameterError(
            "response_format", "response_format type 'json_schema' is not supported yet; use 'json_object'."
        )
    if req.stream_options is not None and not req.stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    if isinstance(req.stop, list) and len(req.stop) > 4:
        raise InvalidRequestError("At most 4 stop sequences are allowed.", param="stop")
    for i, message in enumerate(req.messages):
        if isinstance(message.content, list):
            for j, part in enumerate(message.content):
                if part.type != "text":
                    raise UnsupportedParameterError(
                        f"messages[{i}].content[{j}].type",
                        f"Content parts of type '{part.type}' are not supported yet; only 'text'.",
                    )
                if part.text is None:
                    raise InvalidRequestError(
                        "A text content part needs a 'text' field.", param=f"messages[{i}].content[{j}].text"
                    )
        if message.role == "tool" and not message.tool_call_id:
            raise InvalidRequestError(
                "A message with role 'tool' needs the 'tool_call_id' it answers.", param=f"messages[{i}].tool_call_id"
            )
        if message.content is None and message.role != "assistant":
            raise InvalidRequestError(
                f"A message with role '{message.role}' needs content.", param=f"messages[{i}].content"
            )
    if (where := unencodable_path(req.model_dump(exclude_none=True))) is not None:
        raise InvalidRequestError(f"{where} holds text that is not valid Unicode (a lone surrogate?).", param=where)
    try:
        check_prompt([message_text(m) or "" for m in req.messages], context_tokens=context_tokens)
    except PromptTooLargeError as exc:
        # refused here, before the agent or any expert spends a moment on it (OpenAI's code for the same)
        raise InvalidRequestError(
            f"This request is too large: {exc}.", param="messages", code="context_length_exceeded"
        ) from None


def message_text(message: RequestMessage) -> str | None:
    """The message's text: a string as is, text parts joined by newlines."""
    if message.content is None or isinstance(message.content, str):
        return message.content
    return "\n".join(part.text or "" for part in message.content)


# -- responses ----------------------------------------------------------------------------------------------


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None = "stop"
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="Unix time in seconds.")
    model: str
    choices: list[Choice]
    usage: UsageInfo
    system_fingerprint: str | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(description="Unix time in seconds; the same in every chunk of one completion.")
    model: str
    choices: list[ChunkChoice]
    usage: UsageInfo | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "fleetmind"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
