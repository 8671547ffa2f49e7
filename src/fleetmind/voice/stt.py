"""Speech-to-text for the voice pipeline: pipecat's Whisper service with the packaged model and partial transcripts.

pipecat's ``WhisperSTTService`` transcribes one whole segment when the VAD says the user stopped, so a user
sees nothing while talking. :class:`StreamingWhisperSTTService` adds partial transcripts: while the user
talks it transcribes the audio heard so far every ``interim_interval_s`` (one at a time, greedy decoding) and
pushes an ``InterimTranscriptionFrame``. The final transcript starts early: when the user has been quiet for
``early_final_after_s`` (well before the VAD's ``stop_secs`` call the turn over), what was heard so far is
transcribed; if the VAD then ends the turn with nothing but quiet after it, that transcript is the final one, so the
Whisper run overlaps the VAD's wait instead of following it. Speech after the quiet drops the early run. The model
comes from :func:`fleetmind.voice.models.load_whisper` (cached per process) instead of a hub download.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
from pipecat.frames.frames import Frame, InputAudioRawFrame, InterimTranscriptionFrame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from fleetmind.voice.models import load_whisper, stt_model_path
from fleetmind.voice.settings import VoiceSettings

log = logging.getLogger(__name__)


class StreamingWhisperSTTService(WhisperSTTService):
    """Whisper from the settings' model, with partial transcripts while the user speaks."""

    def __init__(self, voice_settings: VoiceSettings, **kwargs: Any) -> None:
        self._voice_settings = voice_settings
        self._interim_interval_s = voice_settings.interim_interval_s
        self._interim_task: asyncio.Task[None] | None = None
        self._speech_started_at = 0.0
        self._last_interim_at = 0.0
        # the early final transcript: how many bytes of the turn it covers, and its run
        self._early: tuple[int, asyncio.Task[str]] | None = None
        self._quiet_bytes = 0
        self._peak_rms = 0.0
        super().__init__(
            settings=WhisperSTTService.Settings(
                model=str(stt_model_path(voice_settings)),
                language=Language.EN,
                no_speech_prob=voice_settings.stt_no_speech_prob,
            ),
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
        if not self._user_speaking:
            return
        if not was_speaking:
            self._reset_early()
        self._watch_for_the_end(frame.audio)
        if self._interim_interval_s <= 0 or self._early is not None or self._quiet_bytes:
            # no partial transcript once the user has gone quiet: the final one is about to start, and two Whisper
            # runs at once take twice as long each (an interim begun in the quiet made the final ~0.3-0.5 s late)
            return
        now = time.monotonic()
        if not was_speaking or self._speech_started_at == 0.0:
            self._speech_started_at = self._last_interim_at = now
        busy = self._interim_task is not None and not self._interim_task.done()
        if busy or now - self._last_interim_at < self._interim_interval_s:
            return
        self._last_interim_at = now
        self._interim_task = self.create_task(self._interim(bytes(self._audio_buffer)), "interim-transcript")

    def _reset_early(self) -> None:
        self._early, self._quiet_bytes, self._peak_rms = None, 0, 0.0

    def _watch_for_the_end(self, audio: bytes) -> None:
        """Start the final transcript early once the user has been quiet long enough; drop it if they go on."""
        samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32)
        rms = float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
        self._peak_rms = max(self._peak_rms, rms)
        # quiet: far below the loudest of this turn (a microphone's floor is not digital silence)
        if rms > 0.1 * self._peak_rms:
            self._quiet_bytes = 0
            self._early = None  # they went on: what ran early is not the whole turn
            return
        self._quiet_bytes += len(audio)
        after_s = self._voice_settings.early_final_after_s
        if self._early is None and after_s > 0 and self._quiet_bytes >= after_s * self.sample_rate * 2:
            pcm = bytes(self._audio_buffer)
            self._early = (len(pcm), self.create_task(asyncio.to_thread(self._transcribe, pcm), "early-final"))

    def _transcribe(self, pcm: bytes) -> str:
        """The final transcript as pipecat's run_stt makes it (same decoding, same no-speech filter); "" on failure
        (the turn is then transcribed again when the VAD ends it)."""
        model = self._model
        threshold = getattr(self._settings, "no_speech_prob", None)
        if model is None or not isinstance(threshold, float):
            return ""
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        try:
            segments, _ = model.transcribe(audio, language="en")
            return " ".join(s.text.strip() for s in segments if s.no_speech_prob < threshold).strip()
        except Exception:
            return ""

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        early, self._early = self._early, None
        if early is not None and len(audio) >= early[0]:
            tail = np.frombuffer(audio[early[0] - early[0] % 2 :], dtype=np.int16).astype(np.float32)
            if not tail.size or float(np.sqrt(np.mean(tail * tail))) <= 0.1 * max(self._peak_rms, 1.0):
                text = await early[1]
                if text:
                    log.info(
                        "final transcript made early (%.2f s of quiet before the turn ended)",
                        self._voice_settings.early_final_after_s,
                        extra={"event": "voice_stt_early", "chars": len(text)},
                    )
                    await self._handle_transcription(text, True, Language.EN)
                    yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), Language.EN)
                    return
        async for frame in super().run_stt(audio):
            yield frame

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
