"""The agent's own HTTP face: ``POST /api/agent/chat`` and ``GET /health``.

A chat request is an :class:`~fleetmind.contracts.protocol.AgentRequest`; the answer streams newline-delimited JSON
:class:`~fleetmind.contracts.protocol.AgentEvent` lines, ``delta`` lines and then one ``done`` or ``error``.
Failures of the agent itself (timeout, no expert) arrive in-stream with status 200, as the protocol says; only
auth, validation and a stopped pipeline are HTTP errors. The caller is a key of any scope, or the gateway, which
shows the service credential and names the key it speaks for (:func:`fleetmind.http.auth.require_key`): that key id
owns the request, its conversation and its memories. When the client goes away Starlette cancels the stream, and
closing the runtime's iterator cancels the request and its expert call. Everything the routes need is one
:class:`AgentServices` on ``app.state.agent``, put there by the composition root (:mod:`fleetmind.apps`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.contracts.protocol import AgentEvent, AgentRequest
from fleetmind.events import EventHub
from fleetmind.http.auth import Caller, require_key
from fleetmind.http.bodies import inline_refs, parse_body
from fleetmind.http.envelope import ErrorResponse, ServiceError

__all__ = ["AgentServices", "HealthResponse", "answer", "router"]

NDJSON = "application/x-ndjson"

router = APIRouter(tags=["agent"])


@dataclass
class AgentServices:
    """What the agent's routes use: the runtime and the event hub (keys and the service secret are the HTTP kit's,
    on ``app.state.key_store`` and ``app.state.service_secret``)."""

    runtime: AgentRuntime
    hub: EventHub


class HealthResponse(BaseModel):
    status: Literal["ok", "starting"]


def _services(request: Request) -> AgentServices:
    services: AgentServices = request.app.state.agent
    return services


async def get_services(request: Request) -> AgentServices:
    return _services(request)


Services = Annotated[AgentServices, Depends(get_services)]


async def agent_request(request: Request) -> AgentRequest:
    """The body as an AgentRequest, parsed after auth so an anonymous caller learns nothing of the schema."""
    return parse_body(AgentRequest, await request.body())


def _preview(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def answer(runtime: AgentRuntime, request: AgentRequest, hub: EventHub) -> AsyncGenerator[AgentEvent, None]:
    """The answer's events for ``request`` (its owner already set by the caller's checked key); the turn's start and
    end go into the live event stream too. The chat route streams them as lines; a gateway in this process reads
    them directly (:mod:`fleetmind.apps.agent_process`). Both write each event to a socket, so the text is held
    for ``stream_hold_ms`` between chunks (:meth:`AgentRuntime.submit`)."""
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), None)
    hub.publish(
        "agent_turn",
        f"request {request.id} for {request.model}: {_preview(last_user)}",
        request_id=request.id,
        model=request.model,
        conversation_id=request.conversation_id,
        owner=request.owner,
    )
    parts: list[str] = []
    # closed here, not left to the garbage collector: closing it is what cancels the request and its expert call
    events = runtime.submit(request, hold_s=runtime.settings.stream_hold_ms / 1000)
    try:
        async for event in events:
            if event.type == "delta":
                parts.append(event.text)
            elif event.type == "done":
                hub.publish(
                    "agent_answer",
                    f"{event.expert or 'the agent'} answered {request.id}: {_preview(''.join(parts))}",
                    request_id=request.id,
                    expert=event.expert,
                    completion_tokens=event.usage.completion_tokens if event.usage else 0,
                )
            else:
                hub.publish(
                    "agent_error",
                    f"request {request.id} failed ({event.code}): {event.message}",
                    level="warning",
                    request_id=request.id,
                    code=event.code,
                    expert=event.expert,
                )
            yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def _lines(runtime: AgentRuntime, request: AgentRequest, hub: EventHub) -> AsyncIterator[str]:
    events = answer(runtime, request, hub)
    try:
        async for event in events:
            yield event.model_dump_json(exclude_none=True) + "\n"
    finally:
        await events.aclose()


_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "The body is not valid JSON or not valid Unicode"),
        (401, "Missing or invalid API key (or service credential)"),
        (413, "The body is too large"),
        (422, "The body is not an AgentRequest (the first wrong field is named in param)"),
        (429, "Too many failed authentications from this address; Retry-After says when to try again"),
        (503, "The agent pipeline is not running"),
    )
}


@router.post(
    "/api/agent/chat",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}}, **_ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "an AgentRequest (fleetmind.contracts.protocol)",
            "content": {"application/json": {"schema": inline_refs(AgentRequest.model_json_schema())}},
        }
    },
)
async def chat(
    caller: Annotated[Caller, Depends(require_key("chat", service=True))],
    services: Services,
    request: Annotated[AgentRequest, Depends(agent_request)],
) -> StreamingResponse:
    runtime = services.runtime
    if not runtime.running:
        raise ServiceError(
            "the agent pipeline is not running", status_code=503, type="server_error", code="unavailable"
        )
    # the key that was checked owns the request (and its conversation and memories), whatever the body said; the
    # gateway names its caller's key id, so an OpenAI client's memories are its key's too
    request = request.model_copy(update={"owner": caller.key_id})
    return StreamingResponse(
        _lines(runtime, request, services.hub),
        media_type=NDJSON,
        # Proxies must pass each line on as it comes, not buffer the answer.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/health", tags=["health"], response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(services: Services) -> JSONResponse:
    """Whether the agent pipeline is running; no auth, for the orchestrator's health check."""
    if services.runtime.running:
        return JSONResponse(HealthResponse(status="ok").model_dump())
    return JSONResponse(HealthResponse(status="starting").model_dump(), status_code=503)
