"""Dependencies of Mission Control's routes: settings, the agent runtime, the key store and API key auth.

Each is an ``Annotated`` alias so a route states what it needs in its signature. Auth takes ``Authorization:
Bearer <key>`` and checks it against :class:`fleetmind.security.KeyStore` (keys file in the state dir plus
hashes from the environment); a missing, malformed or unknown key gets the same 401, so the answer reveals
nothing about which keys exist. A valid key yields a :class:`Caller` (the key's id, name and scope), which is what
approvals record as "who" and what owns conversations and memories. A key whose scope is too low gets a 403
(:data:`ChatKeyDep` < :data:`OperatorDep` < :data:`AdminDep`; Mission Control's routes want ``operator``).
The caller itself is the HTTP kit's (:mod:`fleetmind.http.auth`). The WebSocket's auth (:func:`websocket_key`)
takes the same header or, because a browser cannot set headers on a WebSocket, the key as a
``Sec-WebSocket-Protocol`` value ``fleetmind.key.<key>``; never a query parameter (URLs end up in logs).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Protocol

from fastapi import Depends, Request, WebSocket

from fleetmind.config import Settings
from fleetmind.events import EventHub
from fleetmind.http.auth import Caller, require_key
from fleetmind.mission_control.toolruns import ToolRuns
from fleetmind.security import KeyStore
from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.runner import ToolRunner

# The subprotocol a browser offers for the events WebSocket, and the prefix of the one that carries its key.
WS_PROTOCOL = "fleetmind.events.v1"
WS_KEY_PREFIX = "fleetmind.key."

if TYPE_CHECKING:
    from fleetmind.agent.experts import ExpertDirectory
    from fleetmind.agent.stats import AgentStats
    from fleetmind.memory.long_term import LongTermMemory
    from fleetmind.memory.short_term import ConversationHistory

log = logging.getLogger(__name__)

# The dependencies are ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency in its thread
# pool, a worker-thread hop per dependency per request (chat used four), far more than what they do (an attribute
# read; the key file is only stat'ed unless it changed).


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


class AgentView(Protocol):
    """What Mission Control reads and steers of the agent (its runtime is one): nothing of its pipeline."""

    @property
    def running(self) -> bool: ...

    @property
    def in_flight(self) -> int: ...

    stats: AgentStats
    directory: ExpertDirectory
    history: ConversationHistory
    memory: LongTermMemory | None

    async def export_state(self, *, owner: str | None = ...) -> bytes: ...

    async def import_state(self, data: bytes, *, owner: str | None = ...) -> None: ...


async def get_runtime(request: Request) -> AgentView:
    runtime: AgentView = request.app.state.runtime
    return runtime


async def get_key_store(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.key_store
    return store


async def get_hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.events
    return hub


async def get_approvals(request: Request) -> ApprovalBroker:
    broker: ApprovalBroker = request.app.state.approvals
    return broker


async def get_tools(request: Request) -> ToolRunner:
    runner: ToolRunner = request.app.state.tools
    return runner


async def get_tool_runs(request: Request) -> ToolRuns:
    runs: ToolRuns = request.app.state.tool_runs
    return runs


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RuntimeDep = Annotated[AgentView, Depends(get_runtime)]
KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]
HubDep = Annotated[EventHub, Depends(get_hub)]
ApprovalsDep = Annotated[ApprovalBroker, Depends(get_approvals)]
ToolsDep = Annotated[ToolRunner, Depends(get_tools)]
ToolRunsDep = Annotated[ToolRuns, Depends(get_tool_runs)]


# Any valid key: the voice page's helpers (vision) and the agent's chat; Mission Control proper needs operator.
ChatKeyDep = Annotated[Caller, Depends(require_key("chat"))]
OperatorDep = Annotated[Caller, Depends(require_key("operator"))]
AdminDep = Annotated[Caller, Depends(require_key("admin"))]


def websocket_key(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The key a WebSocket client sent (header, else subprotocol) and the subprotocol to answer with.

    The answer names only ``fleetmind.events.v1`` (when offered), never the key, so it is not echoed back.
    """
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    key = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if key is None:
        key = next((p[len(WS_KEY_PREFIX) :] for p in offered if p.startswith(WS_KEY_PREFIX)), None)
    return key, (WS_PROTOCOL if WS_PROTOCOL in offered else None)
