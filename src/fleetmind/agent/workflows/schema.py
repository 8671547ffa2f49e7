"""The schema of a workflow file, as pydantic models.

A file holds a ``name``, an optional ``description`` and a list of ``steps``; each step has an ``id`` (unique in
the file, used in logs), the step type it ``use``\\ s and that type's parameters under ``with``. Unknown keys are
errors, so a typo (``step:`` for ``use:``) is caught when the file loads, not when a request reaches it. The
parameters are checked against the step type's own model by the loader, which knows the registry.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class StepSpec(BaseModel):
    """One step as written in the file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=_ID_PATTERN, description="Unique name of the step inside its workflow.")
    use: str = Field(min_length=1, description="The registered step type this step runs.")
    params: dict[str, Any] = Field(default_factory=dict, alias="with", description="The step type's parameters.")
    description: str | None = None


class WorkflowSpec(BaseModel):
    """A whole workflow file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID_PATTERN)
    description: str | None = None
    steps: list[StepSpec] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _unique_ids(cls, steps: list[StepSpec]) -> list[StepSpec]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return steps
