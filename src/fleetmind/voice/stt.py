"""Speech-to-text for the voice pipeline: pipecat's Whisper service with the packaged model and partial transcripts.

pipecat's ``WhisperSTTService`` transcribes one whole segment when the VAD says the user stopped, so a user
sees nothing while talking. :class:`StreamingWhisperSTTService` adds partial transcripts: while the user
talks it transcribes the audio heard so far every ``interim_interval_s`` (one at a time, greedy decoding) and
pushes an ``InterimTranscriptionFrame``. The final transcript is pipecat's own. The model comes from
:func:`fleetmind.voice.models.load_whisper` (cached per process) instead of a hub download.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from pipecat.frames.frames import InputAudioRawFrame, InterimTranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from fleetmind.voice.models import load_whisper, stt_model_path
from fleetmind.voice.settings import VoiceSettings


class StreamingWhisperSTTService(WhisperSTTService):
    """Whisper from the settings' model, with partial transcripts while the user speaks."""

    def __init__(self, voice_settings: VoiceSettings, **kwargs: Any) -> None:
        self._voice_settings = voice_settings
        self._interim_interval_s = voice_settings.interim_interval_s
        self._interim_task: asyncio.Task[None] | None = None
        self._speech_started_at = 0.0
        self._last_interim_at = 0.0
        super().__init__(
            settings=WhisperSTTService.Settings(model=str(stt_model_path(voice_settings)), language=Language.EN),
            device="cpu",
            compute_type=voice_settings.stt_compute_type,
            audio_passthrough=False,  # nothing after the STT needs the microphone's audio
            **kwargs,
        )

    def _load(self) -> None:
        # The parent would construct a new WhisperModel per connection; the cache shares one per process.
        self._model = load_whisper(self._voice_settings)

    async def process_audio_frame(self, frame: InputAudioRawFrame, direction: FrameDirection) -> None:
        was_speaking = self._user_speaking
        await super().process_audio_frame(frame, direction)
        if not self._user_speaking or self._interim_interval_s <= 0:
            return
        now = time.monotonic()
        if not was_speaking or self._speech_started_at == 0.0:
            self._speech_started_at = self._last_interim_at = now
        busy = self._interim_task is not None and not self._interim_task.done()
        if busy or now - self._last_interim_at < self._interim_interval_s:
            return
        self._last_interim_at = now
        self._interim_task = self.create_task(self._interim(bytes(self._audio_buffer)), "interim-transcript")

    async def _handle_user_stopped_speaking(self, frame: Any) -> None:
        self._speech_started_at = 0.0
        await super()._handle_user_stopped_speaking(frame)

    async def _interim(self, pcm: bytes) -> None:
        model = self._model
        if model is None:
            return
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0

        def transcribe() -> str:
            # Greedy and without timestamps: a partial transcript is a hint, speed matters more than polish.
            segments, _ = model.transcribe(
                audio, language="en", beam_size=1, without_timestamps=True, condition_on_previous_text=False
            )
            return " ".join(s.text.strip() for s in segments if s.no_speech_prob < 0.6).strip()

        text = await asyncio.to_thread(transcribe)
        # After the user stopped, the final transcript is on its way; a late partial one would only confuse.
        if text and self._user_speaking:
            await self.push_frame(
                InterimTranscriptionFrame(
                    text=text, user_id=self._user_id, timestamp=time_now_iso8601(), language=Language.EN
                )
            )
