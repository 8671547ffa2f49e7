"""Fixtures for the voice tests: a real uvicorn server with the voice router around a real AgentRuntime."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from pipecat.frames.frames import Frame

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.config import Settings
from fleetmind.security import KeyStore
from fleetmind.voice.settings import VoiceSettings
from fleetmind.voice.tts import EspeakTTSService, LocalPiperTTSService, TTSService
from fleetmind.voice.web import router


@dataclass
class VoiceServer:
    url: str  # ws://127.0.0.1:PORT/voice/ws
    http: str  # http://127.0.0.1:PORT
    key: str
    runtime: AgentRuntime | None
    app: FastAPI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tts_engines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The engine of every sentence the voice spoke during the test, in order: "piper", or "espeak-ng" (the fallback
    when the Piper voice is missing, which sounds robotic but would otherwise pass unnoticed)."""
    spoken: list[str] = []
    for service, engine in ((LocalPiperTTSService, "piper"), (EspeakTTSService, "espeak-ng")):

        async def run_tts(
            self: TTSService, text: str, context_id: str, _run: Any = service.run_tts, _engine: str = engine
        ) -> AsyncGenerator[Frame, None]:
            spoken.append(_engine)
            async for frame in _run(self, text, context_id):
                yield frame

        monkeypatch.setattr(service, "run_tts", run_tts)
    return spoken


@pytest.fixture(scope="session")
def espeak() -> str:
    import shutil

    program = shutil.which("espeak-ng")
    if program is None:
        pytest.fail("espeak-ng is not installed: `make test` installs it (scripts/apt-test.txt)")
    return program


@pytest_asyncio.fixture
async def make_voice_server(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start an app (voice router only) on a real socket; the runtime is started against ``expert_url``."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], AgentRuntime | None]] = []

    async def factory(expert_url: str | None, voice: VoiceSettings | None = None) -> VoiceServer:
        settings = Settings(state_dir=tmp_path / f"state{len(servers)}")
        key, _ = KeyStore(settings.keys_file).create("voice-test")
        runtime = None
        if expert_url is not None:
            runtime = AgentRuntime(settings=AgentSettings(experts=f"general={expert_url}"))
            await runtime.start()
        app = FastAPI()
        app.include_router(router)
        app.state.settings = settings
        app.state.runtime = runtime
        app.state.voice_settings = voice or VoiceSettings()
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve())
        servers.append((server, task, runtime))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        return VoiceServer(f"ws://127.0.0.1:{port}/voice/ws", f"http://127.0.0.1:{port}", key, runtime, app)

    yield factory
    for server, task, runtime in servers:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 15)
        if runtime is not None:
            await runtime.stop()
