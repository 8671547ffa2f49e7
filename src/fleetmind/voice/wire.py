"""The voice WebSocket's wire format, and the pipecat serializer that speaks it.

Client → server:

* binary messages: raw PCM, signed 16-bit little-endian, mono, 16 kHz, any length (the page sends 20 ms,
  640 bytes). Send silence too, not only speech: the VAD needs to hear the pauses.
* text messages: JSON objects. ``{"type": "auth", "token": "<API key>"}`` as the first message when the key is
  not in the ``token`` query parameter; ``{"type": "text", "text": "..."}`` asks a question by text (answered
  aloud, like speech).

Server → client:

* binary messages: the answer's audio, raw PCM s16le mono at ``output_sample_rate`` (from ``ready``), sent
  about twice as fast as it plays, so the client queues it and plays it in order.
* text messages: JSON objects, each with ``type`` and ``t`` (the server's ``time.time()`` when it was sent):

  - ``ready``: ``input_sample_rate``, ``output_sample_rate``, ``session`` — the pipeline is listening.
  - ``vad``: ``state`` "started" | "stopped" — the voice activity detector's verdict on the user's audio.
  - ``transcript``: ``text``, ``final`` (false: a partial transcript while the user talks), ``turn``.
  - ``answer``: ``text`` (a piece of the agent's answer as it is generated), ``turn``.
  - ``answer_end``: ``turn``, ``reason`` "done" | "interrupted" | "error", ``message`` on error.
  - ``speaking``: ``state`` "started" | "stopped" — answer audio began / ended; ``turn``; the first "started"
    of a turn carries ``timings`` (seconds, see :mod:`fleetmind.voice.processor`).
  - ``interrupt``: the user talked over the agent: drop every queued answer sample now; no audio of the
    interrupted answer follows.
  - ``error``: ``message`` (e.g. a model that is not installed); the server closes the socket after it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.serializers.base_serializer import FrameSerializer

log = logging.getLogger(__name__)

INPUT_SAMPLE_RATE = 16000
CLOSE_UNAUTHORIZED = 4401
CLOSE_UNAVAILABLE = 4503


def message(type_: str, **fields: Any) -> dict[str, Any]:
    """A server → client JSON message, stamped with the server's clock."""
    return {"type": type_, "t": time.time(), **fields}


def urgent(type_: str, **fields: Any) -> OutputTransportMessageUrgentFrame:
    """A message frame the output transport sends at once, ahead of queued audio."""
    return OutputTransportMessageUrgentFrame(message=message(type_, **fields))


class VoiceWireSerializer(FrameSerializer):
    """Binary PCM both ways, JSON text messages both ways (see the module docstring)."""

    def __init__(self, *, input_sample_rate: int = INPUT_SAMPLE_RATE) -> None:
        super().__init__()
        self._input_sample_rate = input_sample_rate
        self._odd_byte = b""

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, OutputAudioRawFrame):
            return bytes(frame.audio)
        if isinstance(frame, (OutputTransportMessageFrame, OutputTransportMessageUrgentFrame)):
            return json.dumps(frame.message)
        if isinstance(frame, InterruptionFrame):
            # Written by the output transport the moment it drops its queued audio: the true stop of playback.
            return json.dumps(message("interrupt"))
        return None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        if isinstance(data, bytes):
            # A client may split a sample across two messages; keep the odd byte for the next one.
            data = self._odd_byte + data
            cut = len(data) - len(data) % 2
            self._odd_byte = data[cut:]
            if cut == 0:
                return None
            return InputAudioRawFrame(audio=data[:cut], sample_rate=self._input_sample_rate, num_channels=1)
        try:
            payload = json.loads(data)
        except ValueError:
            log.debug("ignoring a text message that is not JSON")
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            return None
        return InputTransportMessageFrame(message=payload)
