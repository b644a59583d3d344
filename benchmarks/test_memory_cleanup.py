"""Memory clean-up regression: after each training pass's clean-up, memory is back near the baseline.

The baseline is what was in use when the first pass started (base model resident). A trainer that
trains folds together (peft: the default on CUDA) starts every fold of a pass at once, so whatever
the pass keeps is there before any of its folds is measured: the check compares passes, and a run
of one pass can only be held to the warm-up allowance. So these runs train their folds two per
pass on every device, a CPU exactly as a GPU does, and need at least two passes. On a CPU the run
uses a smaller dataset unless --tst-dataset names one (benchmarks/conftest.py). With GPUs the
monitor reads NVML per device; without NVML it says so and reads this process's RSS. On failure
the assertion shows a per-fold table (baseline, peak, after clean-up, per device); the terminal
summary shows it for every run.

`--tst-inject-leak MIB` keeps a tensor alive per fold in every run, so the first test must FAIL;
the second test injects a leak itself, per fold and per pass, and must see the check fail (strict
xfail: a check that cannot fail makes it XPASS, which fails the session).
"""

from typing import Any

import pytest

from tst_bench.memory import MemoryNotReleased

pytestmark = pytest.mark.slow

#: a small, fast run: the leak check is about memory, not accuracy
CANARY_DATASET = "synthetic:shortcut?rows=120"
#: folds one pass trains, where the trainer trains folds together
FOLDS_PER_PASS = 2


def in_passes(tst_settings) -> dict[str, Any]:
    """Run options that train folds FOLDS_PER_PASS at a time on every device (peft); other trainers
    train one fold a pass already."""
    if tst_settings.trainers[0] != "peft":
        return {}
    return {"trainer_options": {"fold_batching": True, "folds_per_pass": FOLDS_PER_PASS}}


def test_memory_released_after_each_fold(benchmark, tst_runner, tst_settings, measurement_dataset):
    outcome = benchmark.pedantic(
        tst_runner,
        kwargs={"dataset": measurement_dataset, **in_passes(tst_settings)},
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info["tst_measures"] = "memory"  # the report's verdict is test_accuracy's
    assert all(fold.memory is not None for fold in outcome.result.folds)
    check = outcome.assert_memory_released()
    assert check.passes >= 2, f"one training pass shows no steady state to compare with: {check.message()}"


@pytest.mark.parametrize("leak_per", ["fold", "pass"])
@pytest.mark.xfail(raises=MemoryNotReleased, strict=True, reason="a deliberate leak must fail the check")
def test_deliberate_leak_fails_the_check(tst_runner, tst_settings, leak_per):
    leak_mib = max(512.0, 2 * tst_settings.memory_tolerance_mib)
    outcome = tst_runner(
        leak_mib=leak_mib, leak_per=leak_per, dataset=CANARY_DATASET, folds=4, **in_passes(tst_settings)
    )
    outcome.assert_memory_released()
