"""The live event stream: ``WS /api/ws/events`` for pages, ``GET``/``POST /api/events`` for programs.

WebSocket auth: the key as ``Authorization: Bearer <key>`` (programs), or, because a browser cannot set
headers on a WebSocket, offered as a subprotocol: ``new WebSocket(url, ["fleetmind.events.v1",
"fleetmind.key." + key])``. The server answers with ``fleetmind.events.v1`` only. Without a valid operator key
(or with a revoked one) the connection is closed with code 4401 before anything is sent; a key revoked while
connected closes it with 4401 within a few seconds.

Messages are JSON objects. First ``{"type": "hello", "epoch", "last_seq"}``, then ``{"type": "event", "seq",
"ts", "kind", "level", "message", "data"}`` per event, in ``seq`` order, and ``{"type": "dropped", "count",
"first_seq", "last_seq", "reason"}`` where this reader lost events (it fell behind, or asked for history older
than the backlog). ``?since=SEQ&epoch=E`` resumes after ``SEQ``; without ``since`` the page gets the whole
backlog first. An ``epoch`` other than the hub's (the agent restarted) means start over from the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, WebSocket
from pydantic import BaseModel, Field, field_validator
from starlette.websockets import WebSocketDisconnect, WebSocketState

from fleetmind.events import MAX_DATA_BYTES, EventHub, Subscription
from fleetmind.http.auth import Caller, identify, require_key
from fleetmind.http.bodies import parse_body, read_body
from fleetmind.mission_control.deps import HubDep, OperatorDep, websocket_key
from fleetmind.mission_control.errors import AUTH, error_responses

router = APIRouter(tags=["events"])

CLOSE_UNAUTHORIZED = 4401
# How often an open stream re-checks its key, so a revoked key stops receiving soon.
_RECHECK_S = 2.0
MAX_EVENT_BODY = 64 * 1024
KIND_PATTERN = r"^[a-z][a-z0-9_.\-]{0,63}$"


class PublishRequest(BaseModel):
    """An event pushed by another process (the provisioning API, the supervisor)."""

    kind: str = Field(pattern=KIND_PATTERN)
    message: str = Field(min_length=1, max_length=4000)
    level: Literal["debug", "info", "warning", "error"] = "info"
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > MAX_DATA_BYTES:
            raise ValueError(f"data may be at most {MAX_DATA_BYTES} bytes of JSON")
        return value


@router.post(
    "/api/events",
    status_code=201,
    responses=error_responses(*AUTH, 400, 413, 422),
    # the body is read by hand (bounded, after auth); this is what it must be
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PublishRequest.model_json_schema()}},
        }
    },
)
async def publish_event(
    request: Request, hub: HubDep, caller: Annotated[Caller, Depends(require_key("operator", service=True))]
) -> dict[str, int]:
    """An operator key, or one of the stack's services (the supervisor) with the service credential."""
    body = await read_body(request, MAX_EVENT_BODY, f"an event may be at most {MAX_EVENT_BODY} bytes")
    event = parse_body(PublishRequest, body)
    data = {**event.data, "source": caller.via or "api", "by": caller.name}
    published = hub.publish_data(event.kind, event.message, level=event.level, data=data)
    return {"seq": published.seq}


@router.get("/api/events", responses=error_responses(*AUTH, 422))
async def recent_events(
    hub: HubDep,
    _auth: OperatorDep,
    since: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """The backlog after ``since`` (for programs that poll instead of holding a WebSocket)."""
    return {
        "epoch": hub.epoch,
        "last_seq": hub.last_seq,
        "events": [e.to_dict() for e in hub.recent(since=since, limit=limit)],
    }


def _since(websocket: WebSocket, hub: EventHub) -> int:
    raw = websocket.query_params.get("since")
    try:
        since = max(int(raw), 0) if raw is not None else 0
    except ValueError:
        since = 0
    epoch = websocket.query_params.get("epoch")
    return 0 if epoch and epoch != hub.epoch else since


async def _pump(websocket: WebSocket, sub: Subscription, still_allowed: Any) -> None:
    checked = time.monotonic()
    while True:
        item = await sub.get(wait_s=_RECHECK_S)
        if item is not None:
            await websocket.send_text(json.dumps(item.to_dict()))
        if time.monotonic() - checked >= _RECHECK_S:
            checked = time.monotonic()
            if not still_allowed():
                await websocket.close(code=CLOSE_UNAUTHORIZED, reason="API key revoked")
                return


@router.websocket("/api/ws/events")
async def events_socket(websocket: WebSocket) -> None:
    hub: EventHub = websocket.app.state.events
    store = websocket.app.state.key_store
    key, protocol = websocket_key(websocket)

    def operator() -> Caller | None:
        caller = identify(store, key)
        return caller if caller is not None and caller.allows("operator") else None

    # Accept then close: a browser only sees a close code after a completed handshake.
    await websocket.accept(subprotocol=protocol)
    if operator() is None:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="missing or invalid operator key")
        return
    with hub.subscribe(since=_since(websocket, hub)) as sub:
        await websocket.send_text(json.dumps({"type": "hello", "epoch": hub.epoch, "last_seq": hub.last_seq}))
        pump = asyncio.create_task(_pump(websocket, sub, lambda: operator() is not None))
        listen = asyncio.create_task(_until_disconnect(websocket))
        try:
            await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, listen):
                task.cancel()
            for task in (pump, listen):
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                    await task
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close()


async def _until_disconnect(websocket: WebSocket) -> None:
    """Reads (and ignores) what the client sends, until it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
