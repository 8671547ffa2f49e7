"""Job and node status, and retrying a node: ``/api/provisioning/*``, all behind an API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from fleetmind.provisioning.deps import ApiKey, Service
from fleetmind.provisioning.schemas import (
    HOSTNAME_PATTERN,
    CallHomeAccepted,
    Job,
    JobList,
    JobState,
    NodeList,
    NodeStatus,
    error_responses,
)

# every route here wants an operator key: a valid key of a lower scope gets 403
router = APIRouter(prefix="/api/provisioning", tags=["status"], dependencies=[ApiKey], responses=error_responses(403))

HostnamePath = Annotated[str, Path(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]
JobIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^job_[0-9a-f]{16}$")]


@router.get("/status", response_model=JobList, responses=error_responses(401, 422))
def list_jobs(
    service: Service,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Newest first, at most this many.")] = 100,
) -> JobList:
    """All jobs, newest first, with their final result and output tail, plus a count per state."""
    return service.jobs(state=state, limit=limit)


@router.get(
    "/status/{hostname}",
    name="node_status",
    response_model=NodeStatus,
    responses=error_responses(401, 404, 422),
)
def node_status(
    hostname: HostnamePath,
    service: Service,
    limit: Annotated[int, Query(ge=1, le=1000, description="Newest jobs first, at most this many.")] = 20,
) -> NodeStatus:
    """One node: where it is in the inventory and its jobs, newest first."""
    return service.node_status(hostname.lower(), limit=limit)


@router.get("/jobs/{job_id}", response_model=Job, responses=error_responses(401, 404, 422))
def get_job(job_id: JobIdPath, service: Service) -> Job:
    return service.job(job_id)


@router.get("/nodes", response_model=NodeList, responses=error_responses(401))
def list_nodes(service: Service) -> NodeList:
    """Every host in the inventory with its group and the state of its latest job."""
    return NodeList(nodes=service.nodes())


@router.post(
    "/retry/{hostname}",
    status_code=202,
    response_model=CallHomeAccepted,
    responses=error_responses(401, 404, 409, 422),
)
def retry(hostname: HostnamePath, service: Service, request: Request) -> CallHomeAccepted:
    """Queue the playbook again for a node that is in the inventory (after fixing what TODO.md reported)."""
    job = service.retry(hostname.lower())
    return CallHomeAccepted(
        job_id=job.id,
        hostname=job.hostname,
        role=job.role,
        state=job.state,
        status_url=str(request.url_for("node_status", hostname=job.hostname).path),
    )
