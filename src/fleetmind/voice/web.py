"""The voice routes Mission Control includes: the microphone page and the voice WebSocket.

``GET /voice`` serves ``static/voice.html`` (with ``/voice/voice.js`` and ``/voice/pcm-worklet.js``; no CDN, no
build step). ``WS /voice/ws`` runs one voice session (:mod:`fleetmind.voice.session`, wire format in
:mod:`fleetmind.voice.wire`). The API key (any scope: ``chat`` is enough) comes as ``Authorization: Bearer`` (programs)
or as the first message, ``{"type": "auth", "token": "..."}`` (or the bare key as text; the page does this); never in
the URL, where logs would keep it: a ``token`` query parameter is refused. It is checked against the same key store as
Mission Control's HTTP API (``app.state.key_store``, else ``KeyStore(app.state.settings.keys_file)``). A missing
or wrong key closes the socket with code 4401, a stopped agent with 4503. The agent is
``app.state.runtime``; the voice settings are ``app.state.voice_settings`` when set, else the environment's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse

from fleetmind.security import ApiKey, KeyStore
from fleetmind.voice import VoiceError
from fleetmind.voice.session import run_voice_session
from fleetmind.voice.settings import VoiceSettings, get_voice_settings
from fleetmind.voice.wire import CLOSE_UNAUTHORIZED, CLOSE_UNAVAILABLE, message

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_STATIC_FILES = {"voice.js": "text/javascript", "pcm-worklet.js": "text/javascript"}
_AUTH_WAIT_S = 10.0

router = APIRouter(tags=["voice"])


@router.get("/voice", include_in_schema=False)
async def voice_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "voice.html", media_type="text/html")


@router.get("/voice/{name}", include_in_schema=False)
async def voice_asset(name: str) -> FileResponse:
    if name not in _STATIC_FILES:  # a fixed list: nothing else under the package is reachable
        raise HTTPException(404, "not found")
    return FileResponse(STATIC_DIR / name, media_type=_STATIC_FILES[name])


def _key_store(state: Any) -> KeyStore:
    store = getattr(state, "key_store", None)
    return store if isinstance(store, KeyStore) else KeyStore(state.settings.keys_file)


async def _read_token(websocket: WebSocket) -> str | None:
    """The key from the first message: ``{"type": "auth", "token": ...}`` or the bare key."""
    try:
        first = await asyncio.wait_for(websocket.receive_text(), _AUTH_WAIT_S)
    except (TimeoutError, WebSocketDisconnect, KeyError, RuntimeError):
        return None  # KeyError/RuntimeError: the first message was binary, not the key
    try:
        payload = json.loads(first)
    except ValueError:
        return first.strip() or None
    if isinstance(payload, dict) and payload.get("type") == "auth" and isinstance(payload.get("token"), str):
        return str(payload["token"])
    return None


def _caller(store: KeyStore, token: str | None) -> ApiKey | None:
    """Whose key ``token`` is (its id owns the session's memories), or None."""
    try:
        return store.identify(token)
    except ValueError as exc:
        log.error("API key store unreadable: %s", exc, extra={"event": "key_store_unreadable"})
        return None


def _header_token(websocket: WebSocket) -> str | None:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@router.websocket("/voice/ws")
async def voice_socket(websocket: WebSocket) -> None:
    # Accept first: only an accepted socket can be closed with our own code (4401) rather than a bare 403.
    await websocket.accept()
    if "token" in websocket.query_params:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="send the key in the first message, not in the URL")
        return
    token = _header_token(websocket) or await _read_token(websocket)
    caller = _caller(_key_store(websocket.app.state), token)
    if caller is None:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="missing or invalid API key")
        return
    runtime = websocket.app.state.runtime
    if not runtime.running:
        await websocket.send_text(json.dumps(message("error", message="the agent is not running")))
        await websocket.close(code=CLOSE_UNAVAILABLE, reason="agent not running")
        return
    settings: VoiceSettings = getattr(websocket.app.state, "voice_settings", None) or get_voice_settings()
    try:
        await run_voice_session(websocket, runtime, settings, owner=caller.id)
    except VoiceError as exc:
        # A model that is not installed: tell the page why, in words that name the package.
        log.error("voice session refused: %s", exc, extra={"event": "voice_unavailable"})
        await websocket.send_text(json.dumps(message("error", message=str(exc))))
        await websocket.close(code=CLOSE_UNAVAILABLE, reason="voice unavailable")
