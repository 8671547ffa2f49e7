"""VoiceAgentProcessor: the turn-taking heart of the voice pipeline, between speech-to-text and text-to-speech.

A final transcript becomes a turn: the processor sends it to the agent through
:meth:`AgentRuntime.submit` — the very path text chat takes, so TwinService, workflows, memory and expert
failover behave the same for speech — and pushes the answer's text downstream to the TTS as it streams. When
the VAD hears the user start talking, the processor interrupts: it cancels the running answer (closing the
``submit`` iterator, which cancels the expert call) and broadcasts pipecat's ``InterruptionFrame``, on which
the TTS drops its queued text and the output transport its queued audio and tells the client (``interrupt``).

Timings of a turn, in seconds, sent with the ``speaking``/``started`` message: ``stt`` (VAD said stopped →
final transcript), ``llm_first_token`` (transcript → first answer text), ``tts_first_audio`` (first answer text
→ first answer audio leaves the server) and ``total`` (VAD said stopped → first answer audio). The VAD's own
share (end of speech → VAD said stopped) is only visible to the client, who knows when it stopped talking.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputTransportMessageFrame,
    InterimTranscriptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from fleetmind.contracts.protocol import AgentRequest, ChatMessage, SamplingParams
from fleetmind.voice.settings import VoiceSettings
from fleetmind.voice.wire import urgent

if TYPE_CHECKING:
    from fleetmind.agent.runtime import AgentRuntime

log = logging.getLogger(__name__)

_CANCEL_WAIT_S = 2.0


_CLAUSE_END = ",;:!?"
_SENTENCE_END = ".!?"


class SpeechChunker:
    """Cuts an answer streaming in as tokens into what the TTS says at once.

    The first chunk goes as soon as the first clause exists (a comma, semicolon, colon or sentence end), or after
    ``first_words`` words when no clause ends sooner: what the voice says first decides when the person hears
    anything, and Piper's time to first audio grows with the text it is given. Later chunks are whole sentences
    (better prosody; the first chunk is playing while they are made). A full stop counts only once the next text
    shows it ends a word (``3.5`` is not two sentences).
    """

    def __init__(self, *, first_words: int) -> None:
        self.first_words = first_words
        self._buffer = ""
        self._first = True

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        out: list[str] = []
        while chunk := self._cut():
            out.append(chunk)
        return out

    def flush(self) -> str:
        rest, self._buffer = self._buffer.strip(), ""
        self._first = False
        return rest

    def _cut(self) -> str | None:
        buf = self._buffer
        ends = _CLAUSE_END + "." if self._first else _SENTENCE_END
        for i, c in enumerate(buf):
            if c not in ends:
                continue
            after = buf[i + 1 : i + 2]
            if after.isspace() or (after == "" and c != "."):
                return self._take(i + 1)
            # a full stop at the very end waits for what follows it; inside a word ("3.5") it ends nothing
        if self._first and (words := re.match(rf"\s*(?:\S+\s+){{{self.first_words}}}", buf)):
            return self._take(words.end())  # no clause ended within first_words words: say those
        return None

    def _take(self, n: int) -> str | None:
        chunk, self._buffer = self._buffer[:n].strip(), self._buffer[n:]
        if not chunk:
            return None
        self._first = False
        return chunk


class VoiceHistory:
    """The earlier turns sent with each spoken question, kept so that each prompt starts with the previous one.

    llama-server reuses its cache for the longest prefix a new prompt shares with one it has seen. A history that
    slides by one turn changes the prompt right after the system prompt, so every earlier turn is read again before
    the first word (measured with SmolLM2: 124 prompt tokens evaluated per turn at p50 with two turns sliding). This
    one only grows, up to ``max_turns``; when full it is cut back to the newest turn, so between resets each prompt
    extends the last one and only the new question is read (17 tokens at p50, see ``history_turns`` in the
    settings). After the first answer at least one earlier turn is always there, for "and the other one?".
    """

    def __init__(self, max_turns: int) -> None:
        self.max_turns = max_turns
        self._messages: list[ChatMessage] = []

    def messages(self) -> list[ChatMessage]:
        return list(self._messages)

    def add(self, asked: ChatMessage, answered: ChatMessage) -> None:
        if self.max_turns <= 0:
            return
        self._messages += [asked, answered]
        if len(self._messages) > 2 * self.max_turns:
            self._messages = self._messages[-2:]


def speakable(text: str) -> str:
    """``text`` without what no voice can say: control characters and U+FFFD (a model's broken UTF-8)."""
    return "".join(c for c in text if (c.isprintable() or c in " \n") and c != "\ufffd")


@dataclass
class _Turn:
    number: int
    text: str
    speech_stopped_at: float | None  # None for a typed question
    transcript_at: float
    first_token_at: float | None = None
    first_audio_at: float | None = None

    def timings(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.speech_stopped_at is not None:
            out["stt"] = self.transcript_at - self.speech_stopped_at
        if self.first_token_at is not None:
            out["llm_first_token"] = self.first_token_at - self.transcript_at
            if self.first_audio_at is not None:
                out["tts_first_audio"] = self.first_audio_at - self.first_token_at
        if self.first_audio_at is not None and self.speech_stopped_at is not None:
            out["total"] = self.first_audio_at - self.speech_stopped_at
        return {k: round(v, 4) for k, v in out.items()}


class VoiceAgentProcessor(FrameProcessor):
    """Turns final transcripts into agent requests and answers into TTS text; handles barge-in."""

    def __init__(
        self,
        runtime: AgentRuntime,
        settings: VoiceSettings,
        *,
        conversation_id: str,
        owner: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name or "VoiceAgent")
        self._runtime = runtime
        self._settings = settings
        self._conversation_id = conversation_id
        self._owner = owner
        self._turns = 0
        self._turn: _Turn | None = None  # the turn whose answer is being generated or spoken
        self._answer_task: asyncio.Task[None] | None = None
        self._speech_stopped_at: float | None = None
        self._history = VoiceHistory(settings.history_turns)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            await self.push_frame(urgent("vad", state="started"))
            await self._interrupt()
            await self.push_frame(frame, direction)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speech_stopped_at = time.time()
            await self.push_frame(urgent("vad", state="stopped"))
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterimTranscriptionFrame):
            # Not pushed on: the TTS must never read the user's own words back.
            await self.push_frame(urgent("transcript", text=frame.text, final=False, turn=self._turns + 1))
        elif isinstance(frame, TranscriptionFrame):
            await self._start_turn(frame.text, self._speech_stopped_at)
        elif isinstance(frame, InputTransportMessageFrame):
            if direction == FrameDirection.DOWNSTREAM and frame.message.get("type") == "text":
                await self._interrupt()
                await self._start_turn(str(frame.message.get("text", "")), None)
        elif isinstance(frame, BotStartedSpeakingFrame):
            await self._on_bot_speaking(True)
            await self.push_frame(frame, direction)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            await self._on_bot_speaking(False)
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _on_bot_speaking(self, started: bool) -> None:
        turn = self._turn
        fields: dict[str, Any] = {"state": "started" if started else "stopped"}
        if turn is not None:
            fields["turn"] = turn.number
            if started and turn.first_audio_at is None:
                turn.first_audio_at = time.time()
                fields["timings"] = turn.timings()
        await self.push_frame(urgent("speaking", **fields))

    async def _interrupt(self) -> None:
        """The user talks: stop the answer being generated and everything queued for playback."""
        task, turn = self._answer_task, self._turn
        self._answer_task = None
        if task is not None and not task.done():
            await self.cancel_task(task, _CANCEL_WAIT_S)
            if turn is not None:
                await self.push_frame(urgent("answer_end", turn=turn.number, reason="interrupted"))
                log.info("voice turn %d interrupted", turn.number, extra={"event": "voice_interrupted"})
        # Always, not only while generating: the TTS may still hold text, the transport queued audio.
        await self.broadcast_interruption()

    async def _start_turn(self, text: str, speech_stopped_at: float | None) -> None:
        text = text.strip()
        if not text:
            return
        if self._answer_task is not None and not self._answer_task.done():
            await self._interrupt()  # a second transcript while answering the first: the newer one wins
        self._turns += 1
        turn = _Turn(self._turns, text, speech_stopped_at, time.time())
        self._turn = turn
        await self.push_frame(urgent("transcript", text=text, final=True, turn=turn.number))
        self._answer_task = self.create_task(self._answer(turn), f"voice-turn-{turn.number}")

    async def _answer(self, turn: _Turn) -> None:
        asked = ChatMessage(role="user", content=turn.text)
        # A short history of its own, sent whole (the protocol's stand-alone request): a spoken conversation needs
        # the last turn or two, and every message more is prompt the expert reads before it can say anything.
        request = AgentRequest(
            messages=[*self._history.messages(), asked],
            model=self._settings.agent_model,
            params=SamplingParams(max_tokens=self._settings.max_answer_tokens),
            timeout_s=self._settings.answer_timeout_s,
            conversation_id=None,
            owner=self._owner,
        )
        answer: list[str] = []
        await self.push_frame(LLMFullResponseStartFrame())
        events = self._runtime.submit(request)
        reason, error = "done", None
        said = False
        chunker = SpeechChunker(first_words=self._settings.tts_first_chunk_words)
        try:
            async for event in events:
                if event.type == "delta" and event.text:
                    if turn.first_token_at is None:
                        turn.first_token_at = time.time()
                    answer.append(event.text)
                    if spoken := speakable(event.text):
                        for chunk in chunker.feed(spoken):
                            said = True
                            await self.push_frame(LLMTextFrame(text=chunk + " "))
                    await self.push_frame(urgent("answer", text=event.text, turn=turn.number))
                elif event.type == "error":
                    reason, error = "error", f"{event.code}: {event.message}"
        except Exception as exc:  # the runtime stopped under us: say so instead of going quiet
            reason, error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            # Closing the iterator before its end is what cancels the request inside the agent.
            await events.aclose()  # type: ignore[attr-defined]
            if answer:
                # what was answered, even if interrupted: the next question may refer to it
                self._history.add(asked, ChatMessage(role="assistant", content="".join(answer)))
        if rest := chunker.flush():
            said = True
            await self.push_frame(LLMTextFrame(text=rest + " "))
        if not said:
            # an empty answer, nothing speakable, or an error: the person hears why instead of silence
            fallback = self._settings.error_answer_text if reason == "error" else self._settings.silent_answer_text
            await self.push_frame(LLMTextFrame(text=fallback))
            await self.push_frame(urgent("answer", text=fallback, turn=turn.number, fallback=True))
        await self.push_frame(LLMFullResponseEndFrame())
        fields: dict[str, Any] = {"turn": turn.number, "reason": reason}
        if error:
            fields["message"] = error
        await self.push_frame(urgent("answer_end", **fields))
