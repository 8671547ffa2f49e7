"""``POST /api/agent/chat``: one chat request in, newline-delimited JSON :class:`AgentEvent` lines out.

The body is an :class:`~fleetmind.contracts.protocol.AgentRequest`; the answer streams ``delta`` lines and ends
with one ``done`` or ``error`` line. Failures of the agent itself (timeout, no expert) arrive in-stream with
status 200, as the protocol says; only auth, validation and a stopped pipeline are HTTP errors. The caller is a key
of any scope (the page's chat), or the gateway, which shows the service credential and names the key it speaks
for (:data:`~fleetmind.mission_control.deps.AgentCallerDep`): that key id owns the request, its conversation and its
memories. When the client goes away Starlette cancels the stream, and closing the runtime's iterator cancels the
request and its expert call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.contracts.protocol import AgentRequest
from fleetmind.events import EventHub
from fleetmind.mission_control.bodies import parse_body
from fleetmind.mission_control.deps import AgentCallerDep, HubDep, RuntimeDep
from fleetmind.mission_control.errors import ApiError, error_responses, inline_refs

router = APIRouter(tags=["agent"])

NDJSON = "application/x-ndjson"


def _preview(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _lines(runtime: AgentRuntime, request: AgentRequest, hub: EventHub) -> AsyncIterator[str]:
    """The answer's NDJSON lines; the turn's start and end go into the live event stream too."""
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), None)
    hub.publish(
        "agent_turn",
        f"request {request.id} for {request.model}: {_preview(last_user)}",
        request_id=request.id,
        model=request.model,
        conversation_id=request.conversation_id,
        owner=request.owner,
    )
    answer: list[str] = []
    async for event in runtime.submit(request):
        if event.type == "delta":
            answer.append(event.text)
        elif event.type == "done":
            hub.publish(
                "agent_answer",
                f"{event.expert or 'the agent'} answered {request.id}: {_preview(''.join(answer))}",
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
        yield event.model_dump_json(exclude_none=True) + "\n"


async def agent_request(request: Request) -> AgentRequest:
    """The body as an AgentRequest, parsed after auth so an anonymous caller learns nothing of the schema."""
    return parse_body(AgentRequest, await request.body())


@router.post(
    "/api/agent/chat",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}}, **error_responses(400, 401, 413, 422, 429, 503)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "an AgentRequest (fleetmind.contracts.protocol)",
            "content": {"application/json": {"schema": inline_refs(AgentRequest.model_json_schema())}},
        }
    },
)
async def chat(
    caller: AgentCallerDep,
    runtime: RuntimeDep,
    hub: HubDep,
    request: Annotated[AgentRequest, Depends(agent_request)],
) -> StreamingResponse:
    if not runtime.running:
        raise ApiError(503, "the agent pipeline is not running", type="server_error", code="unavailable")
    # the key that was checked owns the request (and its conversation and memories), whatever the body said; the
    # gateway names its caller's key id, so an OpenAI client's memories are its key's too
    request = request.model_copy(update={"owner": caller.key_id})
    return StreamingResponse(
        _lines(runtime, request, hub),
        media_type=NDJSON,
        # Proxies must pass each line on as it comes, not buffer the answer.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
