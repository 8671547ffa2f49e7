"""Mixture-of-experts routing: which experts to try for a request, and in what order.

A request names a model. An expert's name sends it to that expert; the generic ``fleetmind`` model goes to the
default expert (``general``) when it is healthy and to any healthy expert otherwise. After the first choice
come the other healthy experts, then the unhealthy ones as a last resort, so a failing expert is retried only
when nothing else is left. The plan is a pure function of the request and the directory's view, which keeps it
easy to test and leaves room for the workflow engine to pick experts by other rules later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetmind.agent import NoExpertError, UnknownModelError
from fleetmind.agent.settings import GENERIC_MODEL
from fleetmind.llm.chat import Expert


@dataclass(frozen=True)
class RoutePlan:
    """The experts to try, in order, and a one-line reason for the logs."""

    candidates: tuple[Expert, ...]
    reason: str


def plan_route(
    model: str,
    experts: Sequence[Expert],
    is_healthy: Callable[[Expert], bool],
    *,
    default_expert: str,
    discovery_error: str | None = None,
) -> RoutePlan:
    """Order ``experts`` for a request to ``model``; NoExpertError when none could serve it."""
    if not experts:
        # The registry's own error (addresses included) is for the logs and the status page, not for callers.
        detail = ": the registry could not be reached" if discovery_error else ""
        raise NoExpertError(f"no expert is available{detail}")
    names = {e.name for e in experts}
    if model == GENERIC_MODEL:
        preferred = default_expert
        if not any(e.name == preferred and is_healthy(e) for e in experts):
            preferred = ""
    elif model in names:
        preferred = model
    else:
        known = ", ".join(sorted([GENERIC_MODEL, *names]))
        raise UnknownModelError(f"The model '{model}' does not exist. Known models: {known}.")

    def rank(item: tuple[int, Expert]) -> tuple[int, int, int]:
        index, expert = item
        # Sorting is stable on the listed order, which is the registry's (or the operator's) order.
        return (0 if is_healthy(expert) else 1, 0 if expert.name == preferred else 1, index)

    # A requested expert goes first even when it looks unhealthy: the caller asked for it by name.
    ordered = [e for _, e in sorted(enumerate(experts), key=rank)]
    if preferred and preferred == model:
        ordered = [e for e in ordered if e.name == preferred] + [e for e in ordered if e.name != preferred]
    first = ordered[0]
    if preferred:
        reason = f"model {model!r} -> {first.name}"
    else:
        reason = f"model {model!r}: default expert {default_expert!r} unavailable -> {first.name}"
    return RoutePlan(candidates=tuple(ordered), reason=reason)
