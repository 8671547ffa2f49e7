"""``POST /v1/chat/completions``: thin routing; :class:`~fleetmind.gateway.service.ChatService` works.

A non-streaming call is cancelled when its client disconnects, like a streaming one, so an abandoned request
does not keep an expert busy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.types import Send

from fleetmind.gateway.deps import Authorization, Metrics, Service
from fleetmind.gateway.errors import ClientDisconnected, documented
from fleetmind.gateway.metrics import NO_LABEL, RequestMeter
from fleetmind.gateway.schemas import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    check_supported,
)

router = APIRouter(tags=["chat"])
T = TypeVar("T")


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined: a ``#/$defs`` ref means nothing inside OpenAPI."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


ERROR_ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
# Before OpenAPI 3.2 a text/event-stream schema describes one event; its "data" is a chunk as JSON, an error
# envelope once a stream has failed, and the literal [DONE] last.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                {"type": "string", "const": "[DONE]"},
                {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"anyOf": [_inline_schema(ChatCompletionChunk), ERROR_ENVELOPE_SCHEMA]},
                },
            ]
        }
    },
}


class ClosingStreamingResponse(StreamingResponse):
    """A streaming response that always closes its body iterator, however the stream ends.

    Starlette leaves an abandoned async generator to the garbage collector; closing it here closes the
    upstream request at once, which is what tells the agent to stop working on it.
    """

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: asyncio.Task[T]) -> T:
    """``work``'s result; cancels it if the client goes away first."""
    watcher = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        raise
    finally:
        watcher.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise ClientDisconnected("The client closed the connection before the answer was ready.")
    return work.result()


@router.post(
    "/chat/completions",
    response_model=ChatCompletionResponse,
    responses={
        **documented(400, 401, 404, 429, 502, 503, 504),
        200: {
            "description": "The completion, or with stream=true server-sent `data: <chunk>` events ending in "
            "`data: [DONE]`.",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        },
    },
)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, caller: Authorization, service: Service, metrics: Metrics
) -> Any:
    """Create a model response for the given chat conversation (OpenAI's API)."""
    request.state.stream = body.stream
    check_supported(body)
    # The agent checks the model (it routes by it, from its own directory): one check, no registry call here. The
    # model becomes a metrics label only once the agent took it, so a made-up name never mints a series.
    meter = RequestMeter(
        metrics,
        request.app.state.limiter,
        key_hash=caller.key_hash,
        key_label=caller.key_label,
        model=NO_LABEL,
        started=request.state.started,
    )
    identity = caller.identity
    if body.stream:
        events: AsyncIterator[str] = await service.stream(body, identity=identity, meter=meter)
        request.state.model_label = meter.model
        return ClosingStreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    work = asyncio.ensure_future(service.complete(body, identity=identity, meter=meter))
    completion = await _unless_disconnected(request, work)
    request.state.model_label = meter.model
    headers = {"X-Fleetmind-Expert": completion.expert} if completion.expert else None
    return JSONResponse(completion.body.model_dump(mode="json"), headers=headers)
