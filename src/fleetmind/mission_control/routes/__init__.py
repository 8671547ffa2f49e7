"""Mission Control's routes, one module per resource: status, state, events, approvals, tools, conversations,
vision and the home page. (The agent's own routes, chat and health, are :mod:`fleetmind.agent.server`.)"""

from fleetmind.mission_control.routes import (
    approvals,
    conversations,
    events,
    home,
    state,
    status,
    tools,
    vision,
)

__all__ = ["approvals", "conversations", "events", "home", "state", "status", "tools", "vision"]
