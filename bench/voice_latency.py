"""Benchmark: voice-to-voice latency — end of the user's speech to the first answer audio — with its breakdown.

Starts the default stack as `fleetmind up` does (tests/e2e/launcher.start_stack, llama-server threads as `up` picks
them, the packaged SmolLM2, embeddings, memory and routing on) and speaks into the voice WebSocket of its agent
process (the real pipeline: Silero VAD → Whisper tiny.en → agent → Piper) with the stack's key, like a microphone
(espeak-ng questions in 20 ms frames in real time, silence between turns). ``--in-process`` instead runs llama-server,
an AgentRuntime (no embeddings) and the voice socket in this process: quicker to start, for comparing settings.
Each turn is timed from the moment the last speech frame left:

* ``vad``: end of speech → the VAD says stopped (its ``stop_secs`` of silence plus detection);
* ``stt``: VAD stopped → final transcript (Whisper on the whole utterance);
* ``llm_first_token``: transcript → first answer text from the agent;
* ``tts_first_audio``: first answer text → first answer audio leaves the server (waits for the first
  sentence, then Piper synthesises it);
* ``total``: end of speech → first answer audio arrives at the client.

Prints p50 and p95 of each over ``--turns`` turns (default 30). The voice settings are the defaults unless a flag
sets one (passed as ``FLEETMIND_VOICE_*`` to the stack). The voice is Piper or nothing: the espeak-ng fallback is
turned off, so a missing Piper voice fails the bench instead of timing a robot. A turn with no answer audio is
counted as a failure, not skipped; so is a question the VAD cut in two (it said "stopped" before the speech ended).
Run from the repo root: ``python -m bench.voice_latency``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.config import Settings
from fleetmind.llm import binaries
from fleetmind.llm.models import DEFAULT_MODEL, resolve
from fleetmind.security import KeyStore
from fleetmind.voice.client import FRAME_BYTES, Received, VoiceClient, espeak_speech, silence
from fleetmind.voice.settings import VoiceSettings
from fleetmind.voice.web import router

QUESTIONS = [
    "What is the capital of France?",
    "Name a colour of the sky.",
    "How many legs does a dog have?",
    "What do bees make?",
    "Say hello to me.",
    "What is two plus two?",
    "Where does the sun rise?",
    "What is the opposite of hot?",
    "Tell me one fruit.",
    "What day comes after Monday?",
]
PARTS = ["vad", "stt", "llm_first_token", "tts_first_audio", "total"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_llama(model: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [str(binaries.llama_server()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["-c", "2048", "-t", "2", "--no-webui"]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"llama-server did not start: {log.read_text(errors='replace')[-1500:]}")


class Microphone:
    """Sends 20 ms frames in real time: queued speech when there is some, silence otherwise."""

    def __init__(self, client: VoiceClient) -> None:
        self.client = client
        self.pending = b""
        self.speech_ended = asyncio.Event()
        self.speech_end_at = 0.0

    def say(self, pcm: bytes) -> None:
        self.pending = pcm
        self.speech_ended.clear()

    async def run(self) -> None:
        start, n = time.monotonic(), 0
        while True:
            if self.pending:
                frame, self.pending = self.pending[:FRAME_BYTES], self.pending[FRAME_BYTES:]
                await self.client.ws.send(frame)
                if not self.pending:
                    self.speech_end_at = time.time()
                    self.speech_ended.set()
            else:
                await self.client.ws.send(silence(0.02))
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))


async def next_after(client: VoiceClient, type_: str, after: float, wait_s: float, **match: object) -> Received:
    """The first ``type_`` message that arrived after ``after``. Turns are matched by time, not by number: the
    VAD may split one question into two turns, and the server's turn count then runs ahead of ours."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for r in client.messages(type_, **match):
            if r.at > after:
                return r
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no {type_!r} {match} within {wait_s}s")


async def run_turns(url: str, key: str, turns: int, failures: list[str]) -> list[dict[str, float]]:
    speech = [espeak_speech(q) for q in QUESTIONS]
    rows: list[dict[str, float]] = []
    async with VoiceClient.connect(url, key) as client:
        await client.wait_for("ready", timeout=120)
        mic = Microphone(client)
        sender = asyncio.create_task(mic.run())
        await asyncio.sleep(1.0)
        try:
            for i in range(turns):
                turn = i + 1
                began = time.time()
                mic.say(speech[i % len(speech)])
                await mic.speech_ended.wait()
                end = mic.speech_end_at
                try:
                    started = await next_after(client, "speaking", end, 60, state="started")
                except TimeoutError:
                    answer = "".join((m.message or {}).get("text", "") for m in client.messages("answer") if m.at > end)
                    failures.append(f"turn {turn}: no answer audio within 60 s (answer text {answer!r})")
                    print(f"turn {turn:2d}: FAILED, no answer audio within 60 s (answer text {answer!r})", flush=True)
                    continue
                first_audio = next(r.at for r in client.received if r.audio is not None and r.at > end)
                vad = next(r for r in client.messages("vad", state="stopped") if r.at > end)
                assert started.message is not None and vad.message is not None
                row = dict(started.message.get("timings", {}))
                row["vad"] = vad.message["t"] - end
                row["total"] = first_audio - end
                heard = [r for r in client.messages("transcript", final=True) if r.at > end]
                text = (heard[0].message if heard else None) or {}
                # the VAD said "stopped" while the question was still being spoken: it split the turn
                cut = sum(1 for r in client.messages("vad", state="stopped") if began < r.at <= end)
                if cut:
                    failures.append(f"turn {turn}: cut in {cut + 1} by the VAD (heard {text.get('text')!r} last)")
                    print(f"turn {turn:2d}: FAILED, cut in {cut + 1}, heard {text.get('text')!r}", flush=True)
                else:
                    rows.append(row)
                    parts = " ".join(f"{part} {row[part]:.3f}" for part in PARTS[:-1] if part in row)
                    print(
                        f"turn {turn:2d}: total {row['total']:.3f}s ({parts})  heard {text.get('text')!r}", flush=True
                    )
                try:  # let the answer finish playing (or 6 s), then a short pause before the next question
                    await next_after(client, "speaking", started.at, 6, state="stopped")
                except TimeoutError:
                    pass
                await asyncio.sleep(0.5)
        finally:
            sender.cancel()
    return rows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# flag -> VoiceSettings field; a flag left out keeps the default (the stack's own)
FLAGS = {
    "max_tokens": "max_answer_tokens",
    "interim": "interim_interval_s",
    "vad_stop": "vad_stop_secs",
    "early_final": "early_final_after_s",
    "first_words": "tts_first_chunk_words",
    "history_turns": "history_turns",
    "stt_threads": "stt_threads",
}


def voice_env(args: argparse.Namespace) -> dict[str, str]:
    """The FLEETMIND_VOICE_* variables the flags set, and Piper or a failure (never the espeak-ng fallback)."""
    env = {"FLEETMIND_VOICE_TTS_FALLBACK_TO_ESPEAK": "false"}
    for flag, field in FLAGS.items():
        if (value := getattr(args, flag)) is not None:
            env[f"FLEETMIND_VOICE_{field.upper()}"] = str(value)
    return env


def report(settings: VoiceSettings, where: str, rows: list[dict[str, float]], failures: list[str], turns: int) -> None:
    print(
        f"\nvoice-to-voice latency over {len(rows)} answered turns of {turns}, {len(failures)} failed "
        f"({where}; seconds; TTS Piper; vad_stop_secs={settings.vad_stop_secs}, early final after "
        f"{settings.early_final_after_s}s, interim every {settings.interim_interval_s}s, max "
        f"{settings.max_answer_tokens} answer tokens, first chunk at most {settings.tts_first_chunk_words} words, "
        f"history up to {settings.history_turns} turns; load average {os.getloadavg()[0]:.2f})"
    )
    print(f"{'part':<18}{'p50':>8}{'p95':>8}{'mean':>8}")
    for part in PARTS:
        values = [r[part] for r in rows if part in r]
        if values:
            print(f"{part:<18}{pct(values, 0.5):8.3f}{pct(values, 0.95):8.3f}{statistics.fmean(values):8.3f}")
    if rows:
        totals = [r["total"] for r in rows]
        p50, p95 = pct(totals, 0.5), pct(totals, 0.95)
        print(
            "\nshares of the p50 total: "
            + ", ".join(
                f"{part} {pct([r[part] for r in rows if part in r], 0.5) / p50:.0%}"
                for part in PARTS[:-1]
                if any(part in r for r in rows)
            )
        )
        print("goals:")
        for text, met in (
            (f"voice-to-voice p50 <= 1.0 s ({p50:.3f} s)", p50 <= 1.0),
            (f"voice-to-voice p95 <= 1.5 s ({p95:.3f} s)", p95 <= 1.5),
            (f"no turn left unanswered or cut in two ({len(failures)} of {turns} failed)", not failures),
        ):
            print(f"  [{'met' if met else 'NOT met'}] {text}")
    for failure in failures:
        print(f"failed: {failure}")


def on_the_stack(args: argparse.Namespace) -> None:
    """The default stack as `fleetmind up` starts it; the turns spoken into its agent's voice socket."""
    from tests.e2e.launcher import start_stack, stop_stack

    os.environ.update(voice_env(args))  # start_stack hands this process's environment to `fleetmind up`
    with tempfile.TemporaryDirectory(prefix="fleetmind-voice-bench-") as tmp:
        stack = start_stack(Path(tmp), args.model, timeout=240, threads=None)
        try:
            failures: list[str] = []
            url = f"ws://127.0.0.1:{stack.ports['ui']}/voice/ws"
            rows = asyncio.run(run_turns(url, stack.key, args.turns, failures))
        finally:
            stop_stack(stack)
    report(VoiceSettings(), "the default stack, `fleetmind up`", rows, failures, args.turns)


async def in_process(args: argparse.Namespace) -> None:
    """llama-server, an AgentRuntime without embeddings and the voice socket in this process."""
    os.environ.update(voice_env(args))
    settings = VoiceSettings()
    work = Path(tempfile.mkdtemp(prefix="fleetmind-voice-bench-"))
    port = free_port()
    llama = start_llama(resolve(args.model), port, work / "llama-server.log")
    runtime = AgentRuntime(settings=AgentSettings(experts=f"general=http://127.0.0.1:{port}"))
    server = None
    try:
        await runtime.start()
        app_settings = Settings(state_dir=work / "state")
        key, _ = KeyStore(app_settings.keys_file).create("bench")
        app = FastAPI()
        app.include_router(router)
        app.state.settings, app.state.runtime, app.state.voice_settings = app_settings, runtime, settings
        web_port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=web_port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()  # uvicorn could not start: say why
            await asyncio.sleep(0.05)
        failures: list[str] = []
        rows = await run_turns(f"ws://127.0.0.1:{web_port}/voice/ws", key, args.turns, failures)
        report(settings, f"in this process, llama-server log {work / 'llama-server.log'}", rows, failures, args.turns)
        server.should_exit = True
        await serving
    finally:
        if server is not None:
            server.should_exit = True
        await runtime.stop()
        llama.terminate()
        llama.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the model (catalogue name or GGUF)")
    parser.add_argument("--in-process", action="store_true", help="no stack: llama-server and the socket in here")
    parser.add_argument("--max-tokens", type=int, help="longest answer, in tokens")
    parser.add_argument("--interim", type=float, help="seconds between partial transcripts (0: none)")
    parser.add_argument("--vad-stop", type=float, help="VAD silence before end of turn, seconds")
    parser.add_argument("--early-final", type=float, help="quiet before the final transcript starts, seconds")
    parser.add_argument("--first-words", type=int, help="most words before the first chunk")
    parser.add_argument("--history-turns", type=int, help="most turns of voice history")
    parser.add_argument("--stt-threads", type=int, help="Whisper's CPU threads")
    args = parser.parse_args()
    if args.in_process:
        asyncio.run(in_process(args))
    else:
        on_the_stack(args)


if __name__ == "__main__":
    main()
