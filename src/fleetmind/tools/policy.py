"""The policy: which calls run, which wait for a person, which are refused.

Each call has a risk level (the tool's, or higher for this call's arguments); the policy maps it to an action,
``run``, ``approve`` or ``refuse``, and per-tool overrides win over the risk mapping. A tool marked
``always_approve`` (``shell``) can be refused by policy but never run without a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from fleetmind.tools.base import RISKS, Tool
from fleetmind.tools.settings import ToolsSettings

__all__ = ["ACTIONS", "Action", "Policy"]

Action = Literal["run", "approve", "refuse"]
ACTIONS: tuple[str, ...] = ("run", "approve", "refuse")


def _default_by_risk() -> dict[str, Action]:
    return {"safe": "run", "approval": "approve", "forbidden": "refuse"}


@dataclass(frozen=True)
class Policy:
    """risk level -> action, tool name -> action (wins), and what an unknown risk level gets."""

    by_risk: Mapping[str, Action] = field(default_factory=_default_by_risk)
    overrides: Mapping[str, Action] = field(default_factory=dict)
    unknown_risk: Action = "approve"

    def __post_init__(self) -> None:
        for where, mapping in (("policy", self.by_risk), ("overrides", self.overrides)):
            for key, action in mapping.items():
                if action not in ACTIONS:
                    raise ValueError(f"{where}[{key!r}] = {action!r}: the action must be one of {ACTIONS}")
        unknown = set(self.by_risk) - set(RISKS)
        if unknown:
            raise ValueError(f"policy names unknown risk levels {sorted(unknown)}; known: {RISKS}")
        if self.unknown_risk not in ACTIONS:
            raise ValueError(f"unknown_risk must be one of {ACTIONS}")

    @classmethod
    def from_settings(cls, settings: ToolsSettings) -> Policy:
        by_risk = {**_default_by_risk(), **{k: cast(Action, v) for k, v in settings.policy.items()}}
        return cls(by_risk=by_risk, overrides={k: cast(Action, v) for k, v in settings.overrides.items()})

    def action(self, tool: Tool, risk: str) -> Action:
        """What to do with a call of ``tool`` whose risk is ``risk``."""
        if risk == "forbidden":
            # a forbidden call stays forbidden whatever the overrides say: overrides are for whole tools
            return "refuse"
        action = self.overrides.get(tool.name) or self.by_risk.get(risk, self.unknown_risk)
        if tool.always_approve and action == "run":
            return "approve"
        return action
