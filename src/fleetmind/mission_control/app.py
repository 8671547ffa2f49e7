"""Mission Control: what a person at the page watches and steers, mounted beside the agent by :func:`mount`.

The page's routes (status, state, events, approvals, tools, conversations, vision, home) and the static page sit
on the agent process's app (:mod:`fleetmind.apps.agent_process`). They share that process's event hub, approval
broker and tool runner, and read the agent through its runtime. What they use lives on ``app.state``
(``runtime``, ``key_store``, ``events``, ``approvals``, ``tools``, ``tool_runs``, ``cluster``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from fleetmind.config import Settings
from fleetmind.events import EventHub
from fleetmind.mission_control import routes
from fleetmind.mission_control.cluster import ClusterView
from fleetmind.mission_control.toolruns import ToolRuns
from fleetmind.security import KeyStore

if TYPE_CHECKING:
    from fleetmind.mission_control.deps import AgentView
    from fleetmind.tools.approvals import ApprovalBroker
    from fleetmind.tools.runner import ToolRunner


def mount(
    app: FastAPI,
    settings: Settings,
    *,
    runtime: AgentView,
    hub: EventHub,
    approvals: ApprovalBroker,
    tools: ToolRunner,
    key_store: KeyStore,
) -> None:
    """Put Mission Control's routes and page on ``app``."""
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.key_store = key_store
    app.state.events = hub
    app.state.approvals = approvals
    app.state.tools = tools
    app.state.tool_runs = ToolRuns(tools, hub)
    app.state.filed_approvals = set()  # requests other services filed (routes/approvals.py), while they wait
    app.state.cluster = ClusterView()
    r = routes
    for module in (r.status, r.state, r.events, r.approvals, r.tools, r.conversations, r.vision, r.home):
        app.include_router(module.router)
    app.mount(
        "/static",
        StaticFiles(directory=Path(str(files("fleetmind.mission_control").joinpath("static")))),
        name="static",
    )
