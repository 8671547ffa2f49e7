"""The model catalogue and the llama.cpp programs, checked for real on this machine."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fleetmind.llm import BinaryMissingError, ModelNotFoundError, binaries
from fleetmind.llm.models import DEFAULT_MODEL, resolve
from fleetmind.llm.tinymodel import write_tiny_llama


def test_both_llama_programs_are_built_and_run() -> None:
    assert binaries.llama_server().name == "llama-server"
    assert binaries.rpc_server().name == "ggml-rpc-server"
    assert "version" in binaries.version().lower()


def test_missing_build_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETMIND_LLAMA_BIN_DIR", str(tmp_path))
    binaries.bin_dir.cache_clear()
    try:
        with pytest.raises(BinaryMissingError, match="make llama"):
            binaries.llama_server()
    finally:
        monkeypatch.delenv("FLEETMIND_LLAMA_BIN_DIR")
        binaries.bin_dir.cache_clear()


def test_default_model_ships_in_its_package() -> None:
    path = resolve(DEFAULT_MODEL)
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_any_gguf_path_and_unknown_names(tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "m.gguf")
    assert resolve(str(model)) == model.resolve()
    with pytest.raises(ModelNotFoundError, match=DEFAULT_MODEL):
        resolve("no-such-model")


def test_tiny_model_is_deterministic_and_small(tmp_path: Path) -> None:
    a = write_tiny_llama(tmp_path / "a.gguf", seed=3).read_bytes()
    b = write_tiny_llama(tmp_path / "b.gguf", seed=3).read_bytes()
    assert a == b and len(a) < 2_000_000
    assert resolve("tiny-random", cache_dir=tmp_path).is_file()


def test_tiny_model_serves_through_llama_server(llama_server_url: str) -> None:
    r = httpx.post(
        f"{llama_server_url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0},
        timeout=30,
    )
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 5
