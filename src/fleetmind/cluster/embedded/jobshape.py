"""The shape of a job the embedded orchestrator accepts, checked at the Nomad API's edge.

Every field the orchestrator, allocations and task runners read is typed here, so a malformed body (a string
where a list belongs, a huge ``Count``, a check without an interval, an ID that is a path) is a 400 with the
field's name before anything is stored or started, never a crash later (constraints included: their operators are
checked by the orchestrator). Fields fleetmind does not read pass
through untouched (``extra="allow"``). :func:`check_job` validates and fills the defaults Nomad's API fills
(a restart policy per group).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

NAME = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.\-]*$")]
NANOS = Annotated[StrictInt, Field(ge=0, le=365 * 24 * 3600 * 10**9)]
PORT = Annotated[StrictInt, Field(ge=0, le=65535)]
MAX_COUNT = 100
# Nomad's default restart policy for service jobs (api.RestartPolicy canonicalisation).
DEFAULT_RESTART = {"Attempts": 2, "Interval": 1800 * 10**9, "Delay": 15 * 10**9, "Mode": "fail"}


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class PortSpec(_Shape):
    Label: NAME
    Value: PORT | None = None


class NetworkSpec(_Shape):
    ReservedPorts: list[PortSpec] | None = None
    DynamicPorts: list[PortSpec] | None = None


class CheckRestartSpec(_Shape):
    Limit: StrictInt | None = None
    Grace: NANOS | None = None
    IgnoreWarnings: bool | None = None


class CheckSpec(_Shape):
    Name: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    Type: Literal["http", "tcp"]
    Path: StrictStr | None = None
    Method: StrictStr | None = None
    PortLabel: StrictStr | None = None
    Interval: Annotated[StrictInt, Field(ge=10**7, le=24 * 3600 * 10**9)]
    Timeout: Annotated[StrictInt, Field(ge=10**6, le=3600 * 10**9)]
    CheckRestart: CheckRestartSpec | None = None


class ServiceSpec(_Shape):
    Name: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    PortLabel: StrictStr | None = None
    Tags: list[StrictStr] | None = None
    Meta: dict[str, StrictStr] | None = None
    Checks: list[CheckSpec] | None = None
    CheckRestart: CheckRestartSpec | None = None


class ConstraintSpec(_Shape):
    LTarget: Annotated[StrictStr, Field(max_length=1024)] | None = None
    RTarget: Annotated[StrictStr, Field(max_length=1024)] | None = None
    Operand: Annotated[StrictStr, Field(max_length=32)] | None = None


class TaskConfigSpec(_Shape):
    command: StrictStr
    args: list[StrictStr] | None = None


class ResourcesSpec(_Shape):
    CPU: StrictInt | None = None
    MemoryMB: StrictInt | None = None
    MemoryMaxMB: StrictInt | None = None


class TaskSpec(_Shape):
    Name: NAME
    Driver: StrictStr
    Config: TaskConfigSpec
    Env: dict[str, StrictStr] | None = None
    KillTimeout: NANOS | None = None
    KillSignal: StrictStr | None = None
    Resources: ResourcesSpec | None = None
    Services: list[ServiceSpec] | None = None
    Constraints: list[ConstraintSpec] | None = None


class RestartPolicySpec(_Shape):
    Attempts: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    Interval: NANOS | None = None
    Delay: NANOS | None = None
    Mode: Literal["fail", "delay"] | None = None


class TaskGroupSpec(_Shape):
    Name: NAME
    Count: Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)] | None = None
    Tasks: Annotated[list[TaskSpec], Field(min_length=1)]
    Networks: list[NetworkSpec] | None = None
    Services: list[ServiceSpec] | None = None
    RestartPolicy: RestartPolicySpec | None = None
    Constraints: list[ConstraintSpec] | None = None


class JobSpec(_Shape):
    ID: NAME
    Name: StrictStr | None = None
    Type: StrictStr | None = None
    Namespace: StrictStr | None = None
    Datacenters: list[StrictStr] | None = None
    Priority: StrictInt | None = None
    Meta: dict[str, StrictStr] | None = None
    Constraints: list[ConstraintSpec] | None = None
    TaskGroups: Annotated[list[TaskGroupSpec], Field(min_length=1)]


class JobShapeError(ValueError):
    """The job does not have the shape the orchestrator reads; the message names the field."""


def check_job(job: Any) -> dict[str, Any]:
    """``job`` checked against :class:`JobSpec`, with Nomad's defaults filled in (a copy; the input is untouched)."""
    if not isinstance(job, dict):
        raise JobShapeError("Job must be specified")
    try:
        JobSpec.model_validate(job)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "Job"
        raise JobShapeError(f"invalid job: {where}: {first['msg']}") from None
    job = dict(job)
    job["TaskGroups"] = [
        {**group, "RestartPolicy": {**DEFAULT_RESTART, **(group.get("RestartPolicy") or {})}}
        for group in job["TaskGroups"]
    ]
    return job
