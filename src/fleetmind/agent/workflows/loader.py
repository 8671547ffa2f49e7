"""Loading a workflow file: YAML → schema → registry, with errors that name the file, line and field.

The file is parsed once into PyYAML nodes, which carry their position, and once into plain data for pydantic.
A validation error's location (``steps.2.with.k``) is walked through the node tree to the deepest node that
exists, whose line goes into the :class:`~fleetmind.agent.workflows.WorkflowLoadError`. After the schema come
the registry's checks: every ``use`` names a registered, implemented step type and every ``with`` fits that
type's parameter model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fleetmind.agent.workflows import WorkflowLoadError
from fleetmind.agent.workflows.registry import StepRegistry, StepType
from fleetmind.agent.workflows.schema import WorkflowSpec

Loc = Sequence[str | int]


@dataclass(frozen=True)
class LoadedStep:
    id: str
    type: StepType
    params: BaseModel


@dataclass(frozen=True)
class Workflow:
    """A validated workflow, ready to run."""

    name: str
    path: Path
    description: str | None
    steps: tuple[LoadedStep, ...]


def _line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """1-based line of the deepest node on ``loc`` (a key's own line when the last part is a missing key)."""
    node = root
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def _raise_validation(path: Path, root: yaml.Node | None, exc: ValidationError, prefix: Loc = ()) -> None:
    err = exc.errors()[0]
    loc = [*prefix, *err["loc"]]
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    raise WorkflowLoadError(err["msg"] + more, file=path, line=_line_of(root, loc), field=_dotted(loc)) from None


def load_workflow(path: Path | str, registry: StepRegistry) -> Workflow:
    """Read, validate and resolve the workflow in ``path``; WorkflowLoadError if anything is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowLoadError(f"cannot read the workflow: {exc.strerror or exc}", file=path) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise WorkflowLoadError(f"not valid YAML: {exc.problem or exc}", file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise WorkflowLoadError(f"not valid YAML: {exc}", file=path) from None
    if not isinstance(data, dict):
        raise WorkflowLoadError("a workflow is a mapping with name and steps", file=path, line=_line_of(root, ()))
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        _raise_validation(path, root, exc)

    steps: list[LoadedStep] = []
    for index, step in enumerate(spec.steps):
        step_type = registry.get(step.use)
        if step_type is None:
            known = ", ".join(t.name for t in registry if t.implemented)
            raise WorkflowLoadError(
                f"unknown step type {step.use!r}; known: {known}",
                file=path,
                line=_line_of(root, ("steps", index, "use")),
                field=f"steps.{index}.use",
            )
        if not step_type.implemented:
            raise WorkflowLoadError(
                f"step type {step.use!r} is an extension point with no implementation installed "
                f"({step_type.description}); register one with a step plugin",
                file=path,
                line=_line_of(root, ("steps", index, "use")),
                field=f"steps.{index}.use",
            )
        try:
            params = step_type.params.model_validate(step.params)
        except ValidationError as exc:
            _raise_validation(path, root, exc, prefix=("steps", index, "with"))
        steps.append(LoadedStep(step.id, step_type, params))
    return Workflow(spec.name, path, spec.description, tuple(steps))
