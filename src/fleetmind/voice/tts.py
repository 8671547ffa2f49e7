"""Text-to-speech for the voice pipeline: the packaged Piper voice in-process, or the espeak-ng program.

Both are pipecat ``TTSService`` subclasses, so sentence aggregation, interruption (queued text and audio
dropped) and resampling to the output rate are pipecat's. :class:`LocalPiperTTSService` differs from pipecat's
``PiperTTSService`` only in taking an already loaded voice (loading one costs ~0.7 s, too much per connection)
and never downloading; :class:`EspeakTTSService` runs ``espeak-ng --stdout`` per sentence, the fallback when no
Piper voice is installed. :func:`make_tts` picks one from the settings.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings

from fleetmind.voice.models import EspeakVoiceSpec, PiperVoiceSpec, load_piper, resolve_voice
from fleetmind.voice.settings import VoiceSettings

with warnings.catch_warnings():
    # Importing the module defines pipecat's own deprecated AudioContextWordTTSService, which warns at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from pipecat.services.tts_service import TextAggregationMode, TTSService

if TYPE_CHECKING:
    from piper import PiperVoice

ESPEAK_SAMPLE_RATE = 22050


class LocalPiperTTSService(TTSService):
    """Piper synthesis with a voice loaded once per process; one audio chunk per sentence, as Piper makes them."""

    def __init__(self, voice: PiperVoice, **kwargs: Any) -> None:
        super().__init__(
            # the voice processor hands over whole chunks (its first clause, then sentences): say each at once
            text_aggregation_mode=TextAggregationMode.TOKEN,
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=None, language=None),
            **kwargs,
        )
        self._voice = voice

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        chunks: Iterator[Any] = iter(self._voice.synthesize(text))

        def next_chunk() -> bytes | None:
            chunk = next(chunks, None)
            return None if chunk is None else bytes(chunk.audio_int16_bytes)

        async def audio() -> AsyncIterator[bytes]:
            # Piper blocks for the length of a sentence: off the event loop, one chunk at a time.
            while (data := await asyncio.to_thread(next_chunk)) is not None:
                yield data

        try:
            async for frame in self._stream_audio_frames_from_iterator(
                audio(), in_sample_rate=self._voice.config.sample_rate, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as exc:
            yield ErrorFrame(error=f"piper failed: {exc}")
        finally:
            await self.stop_ttfb_metrics()


class EspeakTTSService(TTSService):
    """Synthesis by the espeak-ng program (robotic, but always available on Debian)."""

    def __init__(self, spec: EspeakVoiceSpec, **kwargs: Any) -> None:
        super().__init__(
            text_aggregation_mode=TextAggregationMode.TOKEN,
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=spec.voice, language=None),
            **kwargs,
        )
        self._spec = spec

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        # "--" ends the options: the text is never read as one, whatever the model wrote.
        proc = await asyncio.create_subprocess_exec(
            self._spec.program,
            "-v",
            self._spec.voice,
            "--stdout",
            "--",
            text,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            wav, _ = await proc.communicate()
        finally:
            if proc.returncode is None:  # cancelled (an interruption) while espeak-ng ran
                proc.kill()
                await proc.wait()
        if proc.returncode != 0 or len(wav) <= 44:
            yield ErrorFrame(error=f"espeak-ng failed with exit code {proc.returncode}")
            return

        async def audio() -> AsyncIterator[bytes]:
            # espeak-ng writes a 44-byte RIFF header whose sizes are wrong when writing to a pipe: skip it.
            yield wav[44:]

        async for frame in self._stream_audio_frames_from_iterator(
            audio(), in_sample_rate=ESPEAK_SAMPLE_RATE, context_id=context_id
        ):
            await self.stop_ttfb_metrics()
            yield frame


def make_tts(settings: VoiceSettings) -> TTSService:
    """The TTS service the settings choose (raises VoiceModelMissingError when its voice is not installed)."""
    spec = resolve_voice(settings)
    if isinstance(spec, PiperVoiceSpec):
        return LocalPiperTTSService(load_piper(spec), name="PiperTTS")
    return EspeakTTSService(spec, name="EspeakTTS")
