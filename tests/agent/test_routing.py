"""Routing: which experts a request tries, in which order."""

from __future__ import annotations

import pytest

from fleetmind.agent import NoExpertError
from fleetmind.agent.routing import RoutePlan, plan_route
from fleetmind.llm.chat import Expert

GENERAL = Expert("general", "http://127.0.0.1:1")
CODER = Expert("coder", "http://127.0.0.1:2")
MATH = Expert("math", "http://127.0.0.1:3")


def names(experts: tuple[Expert, ...]) -> list[str]:
    return [e.name for e in experts]


def route(model: str, experts: list[Expert], healthy: set[str] | None = None) -> RoutePlan:
    def is_healthy(expert: Expert) -> bool:
        return healthy is None or expert.name in healthy

    return plan_route(model, experts, is_healthy, default_expert="general")


def test_fleetmind_goes_to_the_default_expert_first() -> None:
    plan = route("fleetmind", [CODER, GENERAL, MATH])
    assert names(plan.candidates) == ["general", "coder", "math"]
    assert "general" in plan.reason


def test_fleetmind_without_a_healthy_default_goes_to_any_healthy_expert() -> None:
    plan = route("fleetmind", [GENERAL, MATH, CODER], healthy={"coder"})
    assert names(plan.candidates) == ["coder", "general", "math"]
    assert "unavailable" in plan.reason


def test_a_named_expert_goes_first_even_when_it_looks_unhealthy() -> None:
    plan = route("math", [GENERAL, CODER, MATH], healthy={"general", "coder"})
    assert names(plan.candidates) == ["math", "general", "coder"]


def test_unhealthy_experts_come_last() -> None:
    plan = route("coder", [GENERAL, CODER, MATH], healthy={"coder", "math"})
    assert names(plan.candidates) == ["coder", "math", "general"]


def test_every_instance_of_a_named_expert_comes_before_the_others() -> None:
    second_coder = Expert("coder", "http://127.0.0.1:4")
    plan = route("coder", [CODER, GENERAL, second_coder])
    assert plan.candidates == (CODER, second_coder, GENERAL)


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(NoExpertError, match="coder, fleetmind, general"):
        route("gpt-4", [GENERAL, CODER])


def test_no_experts_says_why() -> None:
    with pytest.raises(NoExpertError, match="registry could not be reached"):
        plan_route("fleetmind", [], bool, default_expert="general", discovery_error="connection refused")
