"""The expert's light fallback model: chosen when the main one cannot be served here, and served for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from fleetmind.llm import binaries
from fleetmind.llm.fallback import QUICK_CRASH_S, choose_model, with_model
from fleetmind.llm.tinymodel import write_tiny_llama
from tests.conftest import free_port, stop_process, wait_http


def test_main_model_when_it_can_be_served(tmp_path: Path) -> None:
    main = write_tiny_llama(tmp_path / "main.gguf")
    light = write_tiny_llama(tmp_path / "light.gguf", seed=1)
    choice = choose_model(str(main), str(light), state_file=tmp_path / "s.json", available=1 << 30)
    assert (choice.model, choice.reason) == (str(main), None)
    assert choose_model(str(main), None).model == str(main)


def test_fallback_for_missing_damaged_or_too_big_models(tmp_path: Path) -> None:
    light = str(write_tiny_llama(tmp_path / "light.gguf"))
    assert "cannot read" in str(choose_model(str(tmp_path / "gone.gguf"), light).reason)
    (tmp_path / "junk.gguf").write_bytes(b"not a model")
    assert "not a GGUF" in str(choose_model(str(tmp_path / "junk.gguf"), light).reason)
    big = str(write_tiny_llama(tmp_path / "big.gguf"))
    assert "does not fit" in str(choose_model(big, light, available=1000).reason)


def test_quick_crashes_of_the_main_model_switch_to_the_fallback_then_back(tmp_path: Path) -> None:
    main = str(write_tiny_llama(tmp_path / "main.gguf"))
    light = str(write_tiny_llama(tmp_path / "light.gguf", seed=1))
    state = tmp_path / "state.json"
    t = 1000.0
    assert choose_model(main, light, state_file=state, now=t).model == main
    assert choose_model(main, light, state_file=state, now=t + 5).model == main
    crashed = choose_model(main, light, state_file=state, now=t + 10)
    assert crashed.model == light and "without staying up" in str(crashed.reason)
    # the fallback's own start resets the count: a later restart tries the main model again
    assert choose_model(main, light, state_file=state, now=t + 15).model == main
    # starts far apart are not crashes
    assert choose_model(main, light, state_file=state, now=t + 15 + QUICK_CRASH_S * 2).model == main


def test_no_switch_when_the_fallback_is_unusable_too(tmp_path: Path) -> None:
    choice = choose_model(str(tmp_path / "gone.gguf"), str(tmp_path / "also-gone.gguf"))
    assert choice.reason is None and choice.model.endswith("gone.gguf")


def test_with_model_replaces_the_model_option() -> None:
    assert with_model(["llama-server", "-m", "a", "--port", "1"], "b") == ["llama-server", "-m", "b", "--port", "1"]


def test_launcher_serves_the_fallback_when_the_main_model_is_missing(tmp_path: Path) -> None:
    light = write_tiny_llama(tmp_path / "light.gguf")
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "fleetmind.cluster.expert_launcher",
        "--min-workers",
        "0",
        "--fallback-model",
        str(light),
    ]
    cmd += ["--state-file", str(tmp_path / "launch.json"), "--", str(binaries.llama_server())]
    cmd += ["-m", str(tmp_path / "missing.gguf"), "--host", "127.0.0.1", "--port", str(port), "-t", "1", "--no-webui"]
    log = tmp_path / "expert.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60, proc)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
        assert "light.gguf" in str(models)
        assert "serving the fallback model" in log.read_text()
    finally:
        stop_process(proc)
