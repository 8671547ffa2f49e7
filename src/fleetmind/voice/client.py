"""A Python client of the voice WebSocket, for tests, benchmarks and smoke checks of a running server.

:class:`VoiceClient` streams PCM in real time (20 ms frames, like the page's microphone) and records every
message and audio chunk it gets back with the local ``time.time()`` at arrival, so a caller can measure from
them. :func:`espeak_speech` makes spoken English as 16 kHz PCM with the espeak-ng program, trimmed of leading
and trailing silence so that the end of the returned audio is the end of speech.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import time
import wave
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets

from fleetmind.voice import VoiceModelMissingError
from fleetmind.voice.wire import INPUT_SAMPLE_RATE

FRAME_BYTES = INPUT_SAMPLE_RATE * 2 // 50  # 20 ms


def espeak_speech(text: str, *, voice: str = "en-us", words_per_minute: int = 150) -> bytes:
    """``text`` spoken by espeak-ng as 16 kHz s16le mono PCM, silence trimmed at both ends."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise VoiceModelMissingError("the espeak-ng program is not installed: apt-get install espeak-ng")
    wav = subprocess.run(
        [program, "-v", voice, "-s", str(words_per_minute), "--stdout", "--", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    import soxr  # pipecat's own resampler dependency

    pcm = soxr.resample(samples.astype(np.float32), rate, INPUT_SAMPLE_RATE)
    loud = np.flatnonzero(np.abs(pcm) > 300)
    if loud.size:
        pcm = pcm[loud[0] : loud[-1] + 1]
    return bytes(np.clip(pcm, -32768, 32767).astype("<i2").tobytes())


def silence(seconds: float) -> bytes:
    return bytes(int(INPUT_SAMPLE_RATE * seconds) * 2)


@dataclass
class Received:
    at: float  # local time.time() at arrival
    message: dict[str, Any] | None = None
    audio: bytes | None = None


@dataclass
class VoiceClient:
    """One connection to ``/voice/ws``; use as ``async with VoiceClient.connect(url, token) as client``."""

    ws: Any
    received: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    def connect(cls, url: str, token: str | None) -> _Connection:
        return _Connection(url, token)

    async def _read(self) -> None:
        async for data in self.ws:
            if isinstance(data, bytes):
                self.received.append(Received(time.time(), audio=data))
            else:
                self.received.append(Received(time.time(), message=json.loads(data)))
            self.changed.set()

    def messages(self, type_: str | None = None, **match: Any) -> list[Received]:
        return [
            r
            for r in self.received
            if r.message is not None
            and (type_ is None or r.message["type"] == type_)
            and all(r.message.get(k) == v for k, v in match.items())
        ]

    def audio_after(self, at: float) -> list[Received]:
        return [r for r in self.received if r.audio is not None and r.at > at]

    async def wait_for(self, type_: str, timeout: float = 30.0, **match: Any) -> Received:  # noqa: ASYNC109
        """The first message of ``type_`` (with fields equal to ``match``), waiting for it if needed."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(type_, **match)
            if found:
                return found[0]
            if self._reader is not None and self._reader.done():
                raise ConnectionError(f"the socket closed before a {type_!r} message came")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {type_!r} message {match} within {timeout}s")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(payload))

    async def stream(self, pcm: bytes, *, speed: float = 1.0) -> float:
        """Send ``pcm`` in 20 ms frames at ``speed`` times real time; returns time.time() after the last frame."""
        start = time.monotonic()
        for i, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            await self.ws.send(pcm[offset : offset + FRAME_BYTES])
            ahead = start + (i + 1) * 0.02 / speed - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        return time.time()


class _Connection:
    def __init__(self, url: str, token: str | None) -> None:
        self._url, self._token = url, token
        self._client: VoiceClient | None = None

    async def __aenter__(self) -> VoiceClient:
        ws = await websockets.connect(self._url, max_size=None)
        client = VoiceClient(ws)
        if self._token is not None:
            await client.send_json({"type": "auth", "token": self._token})
        client._reader = asyncio.create_task(client._read())
        self._client = client
        return client

    async def __aexit__(self, *exc: object) -> None:
        assert self._client is not None
        await self._client.ws.close()
        if self._client._reader is not None:
            self._client._reader.cancel()
            try:
                await self._client._reader
            except (asyncio.CancelledError, websockets.ConnectionClosed):
                pass
