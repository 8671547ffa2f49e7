"""``POST /api/ready-for-provisioning``: a new node calls home (the route the design's scripts use)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from fleetmind.provisioning.deps import EnrolmentToken, MetricsDep, Service
from fleetmind.provisioning.errors import ConflictError, ProvisioningError
from fleetmind.provisioning.schemas import CallHomeAccepted, CallHomeRequest, error_responses

router = APIRouter(tags=["call-home"])


@router.post(
    "/api/ready-for-provisioning",
    status_code=202,
    response_model=CallHomeAccepted,
    responses=error_responses(401, 409, 413, 422, 503),
    summary="A new node announces itself; its playbook run is queued.",
)
def ready_for_provisioning(
    body: CallHomeRequest, token: EnrolmentToken, service: Service, metrics: MetricsDep, request: Request
) -> CallHomeAccepted:
    """Add the node to the inventory (in its token's role group) and queue a playbook run limited to it.

    Answered 202 with the job id at once; the run happens in the background. 409 while the node's previous job
    is still queued or running, or when the name is enrolled with another MAC address.
    """
    try:
        job = service.call_home(token, body)
    except ConflictError:
        metrics.call_homes.labels("busy").inc()
        raise
    except ProvisioningError as exc:
        metrics.call_homes.labels("invalid" if exc.status_code < 500 else "error").inc()
        raise
    metrics.call_homes.labels("accepted").inc()
    return CallHomeAccepted(
        job_id=job.id,
        hostname=job.hostname,
        role=job.role,
        state=job.state,
        status_url=str(request.url_for("node_status", hostname=job.hostname).path),
    )
