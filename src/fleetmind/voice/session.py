"""One voice conversation: the pipecat pipeline built around an accepted WebSocket, run until the client leaves.

``transport in → VADProcessor(Silero) → StreamingWhisperSTTService → VoiceAgentProcessor → TTS → transport
out``, in a ``PipelineWorker`` of its own per connection. The agent itself is not part of this pipeline: the
voice processor talks to the shared :class:`~fleetmind.agent.runtime.AgentRuntime`, so the text agent and
every voice conversation share one TwinService and one set of experts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import Frame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

from fleetmind.voice.models import preload
from fleetmind.voice.processor import VoiceAgentProcessor
from fleetmind.voice.settings import VoiceSettings
from fleetmind.voice.stt import StreamingWhisperSTTService
from fleetmind.voice.tts import make_tts
from fleetmind.voice.wire import INPUT_SAMPLE_RATE, VoiceWireSerializer, urgent

if TYPE_CHECKING:
    from fastapi import WebSocket

    from fleetmind.agent.runtime import AgentRuntime

log = logging.getLogger(__name__)


def build_worker(
    websocket: WebSocket, runtime: AgentRuntime, settings: VoiceSettings, *, session_id: str, owner: str | None = None
) -> PipelineWorker:
    """The voice pipeline for one accepted WebSocket (raises VoiceModelMissingError before touching it)."""
    stt = StreamingWhisperSTTService(settings, name="WhisperSTT")
    tts = make_tts(settings)
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_in_sample_rate=INPUT_SAMPLE_RATE,
            audio_out_enabled=True,
            audio_out_sample_rate=settings.output_sample_rate,
            audio_out_end_silence_secs=0,
            serializer=VoiceWireSerializer(),
        ),
    )
    vad = VADProcessor(
        vad_analyzer=SileroVADAnalyzer(
            sample_rate=INPUT_SAMPLE_RATE,
            params=VADParams(
                confidence=settings.vad_confidence, start_secs=settings.vad_start_secs, stop_secs=settings.vad_stop_secs
            ),
        )
    )
    agent = VoiceAgentProcessor(runtime, settings, conversation_id=f"voice-{session_id}", owner=owner)
    worker = PipelineWorker(
        Pipeline([transport.input(), vad, stt, agent, tts, transport.output()]),
        name=f"voice-{session_id}",
        params=PipelineParams(
            audio_in_sample_rate=INPUT_SAMPLE_RATE, audio_out_sample_rate=settings.output_sample_rate
        ),
        enable_rtvi=False,  # our own wire format (fleetmind.voice.wire), not pipecat's RTVI client protocol
        idle_timeout_secs=None,  # a listener who says nothing for a while is still there
        cancel_on_idle_timeout=False,
    )

    @worker.event_handler("on_pipeline_started")
    async def _on_started(_worker: PipelineWorker, _frame: Frame) -> None:
        await worker.queue_frame(
            urgent(
                "ready",
                session=session_id,
                input_sample_rate=INPUT_SAMPLE_RATE,
                output_sample_rate=settings.output_sample_rate,
            )
        )

    @transport.event_handler("on_client_disconnected")
    async def _on_disconnected(_transport: FastAPIWebsocketTransport, _ws: WebSocket) -> None:
        await worker.cancel(reason="client disconnected")

    return worker


_warmed: set[tuple[str, str]] = set()


async def _warm(settings: VoiceSettings) -> None:
    """Once per process and models: load Whisper and the voice and run each once, before the first session says
    ready (their first run pays one-time set-up costs that would otherwise delay the first answer)."""
    key = (settings.stt_model, settings.tts_voice)
    if key in _warmed:
        return
    t0 = time.perf_counter()
    loaded = await asyncio.to_thread(preload, settings)
    _warmed.add(key)
    log.info(
        "voice models warm in %.2fs",
        time.perf_counter() - t0,
        extra={"event": "voice_warm", "seconds": round(time.perf_counter() - t0, 3), **loaded},
    )


async def run_voice_session(
    websocket: WebSocket,
    runtime: AgentRuntime,
    settings: VoiceSettings,
    *,
    session_id: str | None = None,
    owner: str | None = None,
) -> None:
    """Serve one accepted WebSocket until the client disconnects; ``owner`` is the caller's key id."""
    session_id = session_id or uuid.uuid4().hex[:12]
    await _warm(settings)
    worker = build_worker(websocket, runtime, settings, session_id=session_id, owner=owner)
    runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)  # signals belong to the hosting server
    await runner.add_workers(worker)
    log.info("voice session %s started", session_id, extra={"event": "voice_session_started", "session": session_id})
    try:
        await runner.run()
    finally:
        log.info("voice session %s ended", session_id, extra={"event": "voice_session_ended", "session": session_id})
