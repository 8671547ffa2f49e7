"""``GET /api/conversations[/{id}]``: the agent's short-term conversations, for the page's chat after a load.

An operator sees the conversations of its own key; an admin sees its own too, and anyone's with ``?owner=KEY_ID``
(``?owner=*``: every owner's).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from fleetmind.contracts.names import ANY_OWNER
from fleetmind.http.auth import Caller, ScopeTooLow
from fleetmind.mission_control.deps import OperatorDep, RuntimeDep
from fleetmind.mission_control.errors import AUTH, ApiError, error_responses

router = APIRouter(tags=["conversations"])

OwnerQuery = Annotated[str | None, Query(max_length=200, description="an admin's view of another key's")]


def _owner(caller: Caller, owner: str | None) -> str:
    if owner is None or owner == caller.key_id:
        return caller.key_id
    if not caller.is_admin:
        raise ScopeTooLow(caller, "admin")
    return owner


@router.get("/api/conversations", responses=error_responses(*AUTH, 422))
async def list_conversations(runtime: RuntimeDep, caller: OperatorDep, owner: OwnerQuery = None) -> dict[str, Any]:
    """The conversations with their message counts, least recently used first (the last is the latest)."""
    entries = runtime.history.entries(owner=_owner(caller, owner))
    return {"conversations": [{"id": e["id"], "owner": e["owner"], "messages": len(e["messages"])} for e in entries]}


@router.get("/api/conversations/{conversation_id}", responses=error_responses(*AUTH, 404, 422))
async def get_conversation(
    conversation_id: str, runtime: RuntimeDep, caller: OperatorDep, owner: OwnerQuery = None
) -> dict[str, Any]:
    wanted = _owner(caller, owner)
    found = [e for e in runtime.history.entries(owner=wanted) if e["id"] == conversation_id]
    if not found or (wanted == ANY_OWNER and len(found) > 1):
        raise ApiError(404, "no such conversation", code="conversation_not_found")
    return {"id": conversation_id, "owner": found[0]["owner"], "messages": found[0]["messages"]}
