"""Which benchmarks `pytest benchmarks` (`make bench`) runs, and which wait for `--tst-full`.

The default run shows what tst-bench does in a few minutes on any CPU: TsT on the synthetic
shortcut and control sets, the memory clean-up check (and a deliberate leak it must catch), a
small speedup measurement, TsT-RF and IBP with the forest. The benchmarks below take minutes each
on a 2-core CPU; they get the `heavy` marker and run only with `--tst-full` (`make bench-full`).
Benchmarks that need a GPU skip on a CPU and run by default on a GPU runner, except the GPU cases
listed in HEAVY_ON_GPU: one-off comparisons that take many GPU minutes and check no regression.

Keys are `FILE::TEST` (every parametrization) or `FILE::TEST[ID]` (one of them). The session's
OpenMP threads spin only briefly before they sleep (see below), and the memory and speedup
benchmarks get a smaller dataset on a CPU (`measurement_dataset`).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest

# OpenMP threads that wait by spinning hold their core; where more threads than cores are busy (a
# shared CI runner, several jobs at once) every parallel region then waits for a descheduled
# spinner, while threads that never spin pay a wake-up at every region. libgomp (torch's OpenMP)
# spins GOMP_SPINCOUNT times before it sleeps. Measured on a 2-core machine, one 5-fold TsT of the
# tiny model (600 rows idle; 160 rows beside two busy processes): libgomp's default spin 30.3 s idle,
# 50.9 s loaded; OMP_WAIT_POLICY=PASSIVE 54.8 s idle, 24.0 s loaded; GOMP_SPINCOUNT=10000 26.5 s
# idle, 32.6 s loaded. Set before torch loads its OpenMP runtime; Ray workers and vLLM engine
# processes inherit it. An explicit setting of either wins.
SPIN_BEFORE_SLEEP = "10000"
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    if "torch" in sys.modules:
        warnings.warn("torch was loaded before benchmarks/conftest.py set GOMP_SPINCOUNT", stacklevel=1)
    os.environ["GOMP_SPINCOUNT"] = SPIN_BEFORE_SLEEP

HEAVY = {
    "test_vllm_handoff.py::test_five_rebuilt_engines_do_not_grow_memory": "five vLLM engines built in turn",
    "test_vllm_handoff.py::test_fold_handoff_cpu": "vLLM + LlamaFactory per fold: rebuild, hot swap, peft",
    "test_ray_speedup_cpu.py::test_fold_parallel_tst_speedup": "the Ray CPU speedup curve over 2-8 folds",
    "test_ray_speedup_cpu.py::test_data_parallel_inference_speedup": "Ray inference pool on 4,000 rows",
    "test_ray_transport.py::test_object_store_vs_files": "20,000 results shipped both ways, 5 rounds",
    "test_ibp.py::test_ibp_against_random_pruning[tiny-llm]": "IBP with the LLM: six 5-fold LoRA TsTs",
}
#: GPU cases that wait for --tst-full too (a GPU runner pays by the minute)
HEAVY_ON_GPU = {
    "test_vllm_handoff.py::test_rebuild_per_fold_against_default_path[rebuild_lf]": (
        "the per-fold rebuild baseline (engine rebuilt and LlamaFactory started every fold), ~6 min"
        " on an H200: the comparison behind the default path's speedup, not a regression check"
    ),
}
GPU_MARKERS = ("gpu", "multi_gpu")
#: the memory and speedup benchmarks measure memory and time, not accuracy: on a CPU, unless
#: --tst-dataset names a dataset, they run on this smaller set so the default run stays short
CPU_MEASUREMENT_DATASET = "synthetic:shortcut?rows=160"
HERE = Path(__file__).resolve().parent


def heavy_reason(item: pytest.Item) -> str | None:
    """Why `item` is heavy (its HEAVY entry, or HEAVY_ON_GPU for a GPU case), or None."""
    if item.path.parent != HERE:
        return None
    file = item.path.name
    name = getattr(item, "originalname", item.name)
    if any(item.get_closest_marker(marker) for marker in GPU_MARKERS):
        return HEAVY_ON_GPU.get(f"{file}::{item.name}")
    return HEAVY.get(f"{file}::{item.name}") or HEAVY.get(f"{file}::{name}")


@pytest.hookimpl(tryfirst=True)  # before the plugin turns the heavy marker into a skip
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = heavy_reason(item)
        if reason:
            item.add_marker(pytest.mark.heavy(reason=reason))


@pytest.fixture
def measurement_dataset(tst_settings) -> str | None:
    """The dataset of a memory or speedup benchmark; None means the session's first dataset."""
    if tst_settings.usable_gpus or "dataset" in tst_settings.given:
        return None
    return CPU_MEASUREMENT_DATASET
