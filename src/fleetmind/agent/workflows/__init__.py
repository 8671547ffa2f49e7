"""The workflow engine: the agent's thought process as a declarative YAML file of steps.

A workflow (``default_agent_loop.yaml`` ships here) is a list of steps, each naming a step type (``use:``) and
its parameters (``with:``). Step types live in one :class:`~fleetmind.agent.workflows.registry.StepRegistry`;
the built-in ones (:mod:`~fleetmind.agent.workflows.steps`) register through the same call a user's plugin
would. :func:`~fleetmind.agent.workflows.loader.load_workflow` validates a file against the schema and the
registry and says which file, line and field are wrong; :class:`~fleetmind.agent.workflows.engine.WorkflowRunner`
runs a loaded workflow for one request.

Exceptions::

    AgentError (fleetmind.agent)
      +-- WorkflowError                  base of this package's errors
            +-- WorkflowLoadError        a workflow file is unreadable or invalid (file, line, field)
            +-- WorkflowRuntimeError     a workflow ran to its end without answering the request
"""

from __future__ import annotations

from pathlib import Path

from fleetmind.agent import AgentError


class WorkflowError(AgentError):
    """Base class of the workflow engine's errors."""

    code = "internal"


class WorkflowLoadError(WorkflowError, ValueError):
    """A workflow file could not be loaded; says where: file, 1-based line and the field's dotted path."""

    def __init__(self, message: str, *, file: Path | str, line: int | None = None, field: str | None = None) -> None:
        self.file = str(file)
        self.line = line
        self.field = field
        where = self.file + (f":{line}" if line is not None else "")
        what = f" (field {field})" if field else ""
        super().__init__(f"{where}: {message}{what}")


class WorkflowRuntimeError(WorkflowError):
    """A workflow finished without producing an answer (e.g. it has no ``respond`` step)."""


DEFAULT_WORKFLOW = Path(__file__).with_name("default_agent_loop.yaml")


def resolve_workflow(value: Path | str | None) -> Path:
    """A workflow file: ``value`` as a path, or the name of a packaged one (``default_agent_loop``), or the default."""
    if value is None or str(value) == "":
        return DEFAULT_WORKFLOW
    path = Path(value)
    if "/" not in str(value) and not path.exists():
        packaged = Path(__file__).with_name(f"{value}.yaml")
        if packaged.exists():
            return packaged
    return path


__all__ = ["DEFAULT_WORKFLOW", "WorkflowError", "WorkflowLoadError", "WorkflowRuntimeError", "resolve_workflow"]
