"""Mission Control's routes, one module per resource: health, chat, status, state, events, approvals, tools,
conversations, vision and the home page."""

from fleetmind.mission_control.routes import (
    approvals,
    chat,
    conversations,
    events,
    health,
    home,
    state,
    status,
    tools,
    vision,
)

__all__ = ["approvals", "chat", "conversations", "events", "health", "home", "state", "status", "tools", "vision"]
