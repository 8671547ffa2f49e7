"""``POST /api/state/save`` and ``/api/state/load``: the agent's whole state (conversations, memory, settings).

Save answers the state document itself (a download); load takes such a document as the request body and replaces
the agent's conversations and memory with it. A body that is not a state file (however deep or large) is refused
with 400 (413 past the size cap) and changes nothing. An admin key saves and loads everyone's state; any other
operator key only its own conversations and memories (:mod:`fleetmind.agent.state`).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from fleetmind.http.bodies import read_body
from fleetmind.mission_control.deps import OperatorDep, RuntimeDep
from fleetmind.mission_control.errors import AUTH, ApiError, error_responses

router = APIRouter(tags=["state"])

# A state file carries every memory with its 384-d vector: 64 MiB holds tens of thousands.
MAX_STATE_BYTES = 64 * 1024 * 1024


@router.post("/api/state/save", responses=error_responses(*AUTH))
async def save_state(runtime: RuntimeDep, caller: OperatorDep) -> Response:
    data = await runtime.export_state(owner=caller.tenant)
    name = time.strftime("fleetmind-state-%Y%m%d-%H%M%S.json", time.gmtime())
    return Response(
        content=data, media_type="application/json", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.post(
    "/api/state/load",
    responses=error_responses(*AUTH, 400, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "a state file, as /api/state/save answers it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def load_state(request: Request, runtime: RuntimeDep, caller: OperatorDep) -> dict[str, object]:
    body = await read_body(request, MAX_STATE_BYTES, f"a state file may be at most {MAX_STATE_BYTES} bytes")
    try:
        await runtime.import_state(body, owner=caller.tenant)
    except ValueError as exc:
        raise ApiError(400, f"not a fleetmind state file: {exc}", code="invalid_state") from None
    # an operator learns how many memories it has, not how many everyone has
    memories = runtime.memory.count(owner=caller.tenant) if runtime.memory is not None else 0
    return {"loaded": True, "memories": memories}
