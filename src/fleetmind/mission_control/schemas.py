"""Response models of Mission Control's API (the chat route speaks :mod:`fleetmind.contracts.protocol`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ExpertStatus(BaseModel):
    name: str
    url: str
    source: Literal["env", "registry"]
    node_class: str | None = None  # the placement class of the expert's node (registry meta), when known
    healthy: bool
    listed: bool
    served: int
    failed: int
    consecutive_failures: int
    last_ok: float | None
    last_failure: float | None
    last_error: str | None


class RecentAnswer(BaseModel):
    id: str
    outcome: str
    expert: str | None
    at: float
    completion_tokens: int


class RequestCounts(BaseModel):
    served: int
    failed: int
    in_flight: int
    errors: dict[str, int]
    by_expert: dict[str, int]


class ClusterTask(BaseModel):
    alloc: str
    task: str
    state: str
    failed: bool
    restarts: int
    cause: str | None = None  # why it last ended abnormally, in words (fleetmind.cluster.causes)


class ClusterService(BaseModel):
    name: str
    health: Literal["passing", "critical", "unknown"]
    instances: int


class ClusterJob(BaseModel):
    id: str
    status: str
    tasks: list[ClusterTask]
    services: list[ClusterService]


class ClusterStatus(BaseModel):
    available: bool
    orchestrator: str
    error: str | None = None
    jobs: list[ClusterJob] = []


class StatusResponse(BaseModel):
    service: Literal["fleetmind-agent"] = "fleetmind-agent"
    version: str
    running: bool
    uptime_s: float
    experts_from: Literal["env", "registry"]
    discovery_error: str | None
    experts: list[ExpertStatus]
    requests: RequestCounts
    recent: list[RecentAnswer]
    cluster: ClusterStatus | None = None
