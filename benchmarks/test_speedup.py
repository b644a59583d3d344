"""Speedup: the same TsT with 1..N workers (CPU, Ray logical resources) or 1..N GPUs.

Executors plug in by name (tst_bench.executors.EXECUTORS): `sequential` is the 1-worker
reference; `ray` spreads folds over a Ray pool once it is available, otherwise its cases skip with
the reason. Each case is one pytest-benchmark entry; extra_info["tst_speedup"] holds the curve
measured so far in the session (counts, seconds, speedup vs count 1 of the same executor). On a
CPU the runs use a smaller dataset unless --tst-dataset names one (benchmarks/conftest.py): two
CPU cores and a few short folds measure Ray's overhead more than its gain, which shows from about
ten folds (benchmarks/test_ray_speedup_cpu.py, with --tst-full).
"""

import pytest

from tst_bench.plugin import settings_of

pytestmark = pytest.mark.slow

PARALLEL_EXECUTORS = ("ray",)


def pytest_generate_tests(metafunc):
    if "executor_count" not in metafunc.fixturenames:
        return
    settings = settings_of(metafunc.config)
    cases = [pytest.param(("sequential", 1), id="sequential-1")]
    for executor in PARALLEL_EXECUTORS:
        for count in settings.speedup_counts:
            marks = []
            if settings.speedup_unit == "gpus":
                marks.append(pytest.mark.multi_gpu(count) if count > 1 else pytest.mark.gpu)
            cases.append(pytest.param((executor, count), id=f"{executor}-{count}", marks=marks))
    metafunc.parametrize("executor_count", cases)


def require_executor(executor: str) -> None:
    from tst_bench.executors import EXECUTORS

    if executor not in EXECUTORS:
        pytest.skip(
            f"executor {executor!r} is not available in this install (available: {', '.join(EXECUTORS)});"
            f" its speedup cases run once tst_bench.executors provides it"
        )


def test_speedup(benchmark, tst_runner, tst_speedup_recorder, executor_count, measurement_dataset, request):
    executor, count = executor_count
    require_executor(executor)
    if executor in PARALLEL_EXECUTORS:
        request.getfixturevalue(f"tst_{executor}")  # the runtime the executor joins
    outcome = benchmark.pedantic(
        tst_runner,
        kwargs={"executor": executor, "workers": count, "zero_shot": False, "dataset": measurement_dataset},
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info["tst_speedup"] = tst_speedup_recorder.add(executor, count, outcome.seconds)
    benchmark.extra_info["tst_measures"] = "speedup"  # the report's verdict is test_accuracy's
    folds = outcome.folds
    assert len(folds) == tst_runner.settings.folds
    if count > 1:
        workers = {fold.worker for fold in folds}
        assert len(workers) > 1, f"{executor} with {count} workers ran every fold on {workers}"
