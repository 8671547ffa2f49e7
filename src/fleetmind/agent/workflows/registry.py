"""The one place step types are registered: built-ins and a user's plugins go through the same call.

A step type is a name, a pydantic model of its parameters and an async function ``run(ctx, params)``. Types
that the design names but that have no implementation yet (calling tools, asking approval, reflecting) are
*declared* without a body: a workflow that uses one is refused when it loads, so nothing pretends to work.
Plugins are Python modules exposing ``register_steps(registry)``; they are found through the
``fleetmind.workflow_steps`` entry-point group or listed by module name in ``FLEETMIND_AGENT_STEP_PLUGINS``,
the same way :mod:`fleetmind.agent.workflows.steps` registers the built-ins.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from fleetmind.agent.workflows.context import StepContext

P = TypeVar("P", bound=BaseModel)
StepFunction = Callable[["StepContext", Any], Awaitable[None]]

ENTRY_POINT_GROUP = "fleetmind.workflow_steps"


class NoParams(BaseModel):
    """Parameters of a step type that takes none: any key is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class StepType:
    name: str
    params: type[BaseModel]
    description: str
    run: StepFunction | None  # None: declared extension point, refused by the loader

    @property
    def implemented(self) -> bool:
        return self.run is not None


class StepRegistry:
    """Step types by name."""

    def __init__(self) -> None:
        self._types: dict[str, StepType] = {}

    def register(
        self, name: str, *, params: type[P], description: str
    ) -> Callable[[Callable[[StepContext, P], Awaitable[None]]], Callable[[StepContext, P], Awaitable[None]]]:
        """Decorator: ``@registry.register("route", params=RouteParams, description=...)`` on ``async def``."""

        def decorate(fn: Callable[[StepContext, P], Awaitable[None]]) -> Callable[[StepContext, P], Awaitable[None]]:
            self._add(StepType(name, params, description, fn))
            return fn

        return decorate

    def declare(self, name: str, *, description: str, params: type[BaseModel] = NoParams) -> None:
        """Name an extension point that has no implementation: workflows using it are refused."""
        self._add(StepType(name, params, description, None))

    def _add(self, step: StepType) -> None:
        existing = self._types.get(step.name)
        # A plugin may give a declared extension point its body; replacing a working step is a mistake.
        if existing is not None and existing.implemented:
            raise ValueError(f"step type {step.name!r} is already registered")
        self._types[step.name] = step

    def get(self, name: str) -> StepType | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)

    def __iter__(self) -> Iterator[StepType]:
        return iter(self._types.values())

    def load_plugins(self, modules: Iterable[str] = ()) -> None:
        """Register the steps of every ``fleetmind.workflow_steps`` entry point and of ``modules``."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            ep.load()(self)
        for name in modules:
            module = importlib.import_module(name)
            hook = getattr(module, "register_steps", None)
            if not callable(hook):
                raise ValueError(f"step plugin {name!r} has no register_steps(registry) function")
            hook(self)


def default_registry(plugins: Iterable[str] = ()) -> StepRegistry:
    """A registry with the built-in steps, the declared extension points and the given plugins."""
    from fleetmind.agent.workflows import steps

    registry = StepRegistry()
    steps.register_steps(registry)
    registry.load_plugins(plugins)
    return registry
