"""Approvals: ``GET /api/approvals`` (waiting and recently decided), ``POST /api/approvals/{id}/approve|deny``.

A risky tool call waits in the shared :class:`~fleetmind.tools.approvals.ApprovalBroker` until a person decides.
Deciding needs an operator key. The decision records who (the API key's name and id) and when; deciding an approval
that is no longer waiting (decided by someone else, expired, cancelled) is a 404 with code ``approval_not_found``.
Nobody approves their own request: approving with the key the request was made for is a 403 ``self_approval``,
unless the body also carries the request's one-time ``code`` (``fleetmind approvals code ID`` on the agent's
machine prints it; the page asks for it).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from fleetmind.http.auth import Caller
from fleetmind.mission_control.deps import ApprovalsDep, OperatorDep
from fleetmind.mission_control.errors import AUTH, ApiError, error_responses
from fleetmind.tools.approvals import ApprovalBroker
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
