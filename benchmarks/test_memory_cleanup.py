"""Memory clean-up regression: after each fold's clean-up, memory is back near the baseline.

The baseline is what was in use when the first fold started (base model resident). On a CPU the
run uses a smaller dataset unless --tst-dataset names one (benchmarks/conftest.py). With GPUs the
monitor reads NVML per device; without NVML it says so and reads this process's RSS. On failure
the assertion shows a per-fold table (baseline, peak, after clean-up, per device); the terminal
summary shows it for every run.

`--tst-inject-leak MIB` keeps a tensor alive per fold in every run, so the first test must FAIL;
the second test injects such a leak itself and must see the check fail (strict xfail: a check
that cannot fail makes it XPASS, which fails the session).
"""

import pytest

from tst_bench.memory import MemoryNotReleased

pytestmark = pytest.mark.slow

#: a small, fast run: the leak check is about memory, not accuracy
CANARY_DATASET = "synthetic:shortcut?rows=120"


def test_memory_released_after_each_fold(benchmark, tst_runner, measurement_dataset):
    outcome = benchmark.pedantic(tst_runner, kwargs={"dataset": measurement_dataset}, rounds=1, iterations=1)
    benchmark.extra_info["tst_measures"] = "memory"  # the report's verdict is test_accuracy's
    assert all(fold.memory is not None for fold in outcome.result.folds)
    outcome.assert_memory_released()


@pytest.mark.xfail(
    raises=MemoryNotReleased, strict=True, reason="a deliberate per-fold leak must fail the check"
)
def test_deliberate_leak_fails_the_check(tst_runner, tst_settings):
    leak_mib = max(512.0, 2 * tst_settings.memory_tolerance_mib)
    outcome = tst_runner(leak_mib=leak_mib, dataset=CANARY_DATASET, folds=2)
    outcome.assert_memory_released()
