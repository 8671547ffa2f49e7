"""Approvals: ``GET /api/approvals`` (waiting and recently decided), ``POST /api/approvals/{id}/approve|deny``.

A risky tool call waits in the shared :class:`~fleetmind.tools.approvals.ApprovalBroker` until a person decides.
Deciding needs an operator key. The decision records who (the API key's name and id) and when; deciding an approval
that is no longer waiting (decided by someone else, expired, cancelled) is a 404 with code ``approval_not_found``.
Nobody approves their own request: approving with the key the request was made for is a 403 ``self_approval``,
unless the body also carries the request's one-time ``code`` (``fleetmind approvals code ID`` on the agent's
machine prints it; the page asks for it).

The stack's other services (the supervisor) file their risky actions here too: ``POST /api/approvals`` with the
service credential opens a request in the same broker (202, its id) and ``GET /api/approvals/{id}`` says whether it
is still pending or how it was decided. A person decides it on the page like any other.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from fleetmind.http.auth import Caller, require_key
from fleetmind.mission_control.deps import ApprovalsDep, OperatorDep
from fleetmind.mission_control.errors import AUTH, ApiError, error_responses
from fleetmind.tools.approvals import ApprovalBroker, new_approval_id
from fleetmind.tools.errors import ApprovalNotFoundError, SelfApprovalError

router = APIRouter(tags=["approvals"])

# 403 also for approving one's own request without its code; 404 for one no longer waiting
DECIDE_ERRORS = error_responses(*AUTH, 400, 404, 413, 422)


class DecideRequest(BaseModel):
    note: str = Field(default="", max_length=500)
    # the request's one-time approval code: only for approving a request one's own key made
    code: str | None = Field(default=None, max_length=64)


@router.get("/api/approvals", responses=error_responses(*AUTH))
async def list_approvals(broker: ApprovalsDep, _auth: OperatorDep) -> dict[str, Any]:
    return {
        "pending": [p.to_dict() for p in broker.pending()],
        "recent": [d.to_dict() for d in broker.recent(50)],
    }


def _decide(broker: ApprovalBroker, approval_id: str, approve: bool, caller: Caller, body: DecideRequest | None) -> Any:
    try:
        decision = broker.decide(
            approval_id,
            approve=approve,
            by=caller.label,
            note=body.note if body else "",
            by_key=caller.key_id,
            code=body.code if body else None,
        )
    except SelfApprovalError as exc:
        raise ApiError(403, str(exc), type="permission_error", code="self_approval") from None
    except ApprovalNotFoundError:
        raise ApiError(
            404, "no such pending approval (unknown, already decided or expired)", code="approval_not_found"
        ) from None
    return decision.to_dict()


@router.post("/api/approvals/{approval_id}/approve", responses=DECIDE_ERRORS)
async def approve(
    approval_id: str, broker: ApprovalsDep, caller: OperatorDep, body: DecideRequest | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = _decide(broker, approval_id, True, caller, body)
    return result


@router.post("/api/approvals/{approval_id}/deny", responses=DECIDE_ERRORS)
async def deny(
    approval_id: str, broker: ApprovalsDep, caller: OperatorDep, body: DecideRequest | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = _decide(broker, approval_id, False, caller, body)
    return result


class FileRequest(BaseModel):
    """A risky action another service of the stack wants a person to decide on."""

    action: str = Field(
        pattern=r"^[a-z][a-z0-9_.\-]{0,63}$", description="What would be done, e.g. supervisor.rollback"
    )
    arguments: dict[str, str] = Field(default_factory=dict, max_length=20)
    risk: Literal["low", "medium", "high"] = "high"
    reason: str = Field(default="", max_length=2000)
    timeout_s: float = Field(default=300.0, gt=0, le=3600)


ServiceCaller = Annotated[Caller, Depends(require_key("operator", service=True))]


@router.post("/api/approvals", status_code=202, responses=error_responses(*AUTH, 400, 413, 422))
async def file_request(
    request: Request, body: FileRequest, broker: ApprovalsDep, caller: ServiceCaller
) -> dict[str, Any]:
    """Open a request (only the stack's services, with the service credential); decided on the page."""
    if caller.via != "service":
        raise ApiError(
            403, "only the stack's services file approval requests", type="permission_error", code="not_a_service"
        )
    approval_id = new_approval_id()
    waiting = asyncio.get_running_loop().create_task(
        broker.request(
            tool=body.action,
            arguments=body.arguments,
            risk=body.risk,
            requester=caller.name,
            reason=body.reason,
            timeout_s=body.timeout_s,
            requester_key=caller.key_id,
            approval_id=approval_id,
        )
    )
    tasks: set[asyncio.Task[Any]] = request.app.state.filed_approvals
    tasks.add(waiting)
    waiting.add_done_callback(tasks.discard)
    await asyncio.sleep(0)  # the request is registered when its task first runs
    return {"id": approval_id, "status": "pending"}


@router.get("/api/approvals/{approval_id}", responses=error_responses(*AUTH, 404))
async def approval_status(approval_id: str, broker: ApprovalsDep, _auth: ServiceCaller) -> JSONResponse:
    """Whether a request is still pending, or how it was decided (by whom, when)."""
    if any(p.id == approval_id for p in broker.pending()):
        return JSONResponse({"id": approval_id, "status": "pending"})
    decision = broker.decision(approval_id)
    if decision is None:
        raise ApiError(404, "no such approval request", code="approval_not_found")
    return JSONResponse({"status": "decided", **decision.to_dict()})
