"""A workflow step plugin used by the tests: registered by module name, exactly as a user's would be."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fleetmind.agent.workflows.context import StepContext
from fleetmind.agent.workflows.registry import StepRegistry
from fleetmind.contracts.protocol import ChatMessage


class PrefixParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


async def prefix_user(ctx: StepContext, params: PrefixParams) -> None:
    """Put ``text`` before the user's last message."""
    last = ctx.messages[-1]
    ctx.messages[-1] = ChatMessage(role=last.role, content=params.text + (last.content or ""))


def register_steps(registry: StepRegistry) -> None:
    registry.register("prefix_user", params=PrefixParams, description="prefix the last user message")(prefix_user)
