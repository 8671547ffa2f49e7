"""``GET /api/conversations[/{id}]``: the agent's short-term conversations, for the page's chat after a load."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from fleetmind.web.deps import ApiKeyDep, RuntimeDep
from fleetmind.web.errors import ApiError

router = APIRouter(tags=["conversations"])


@router.get("/api/conversations")
async def list_conversations(runtime: RuntimeDep, _auth: ApiKeyDep) -> dict[str, Any]:
    """Every conversation with its message count, least recently used first (the last is the latest)."""
    dumped = runtime.history.dump()
    return {"conversations": [{"id": cid, "messages": len(msgs)} for cid, msgs in dumped.items()]}


@router.get("/api/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, runtime: RuntimeDep, _auth: ApiKeyDep) -> dict[str, Any]:
    messages = runtime.history.dump().get(conversation_id)
    if messages is None:
        raise ApiError(404, "no such conversation", code="conversation_not_found")
    return {"id": conversation_id, "messages": messages}
