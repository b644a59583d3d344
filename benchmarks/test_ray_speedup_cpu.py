"""Ray against the sequential run on this CPU, measured side by side in one test each.

(a) data-parallel inference: one in-process HF predictor vs the Ray predictor pool with 1..N
    workers (warm: workers started and models loaded; cold start times are recorded too).
(b) end-to-end fold-parallel TsT: `run_tst` sequential vs `--executor ray`, Ray start included,
    over several fold counts, to find the fold count from which Ray pays.

Workers are CPU shares (each gets CPUs/N threads; the sequential run uses torch's default, all
cores). A second sequential baseline pinned to one thread is recorded because on an oversubscribed
machine a multi-threaded torch process slows down far more than single-threaded ones, which
inflates Ray's apparent speedup; on a quiet machine the two baselines are close. Sizes can be set
with TST_BENCH_RAY_ROWS, TST_BENCH_RAY_FOLD_COUNTS ("2,4,8"), TST_BENCH_RAY_WORKERS ("1,2") and
TST_BENCH_RAY_BASELINE_THREADS ("default,1": the sequential baselines; the first is the headline).
Every Ray run is held to the determinism contract across thread counts against every baseline
(tst_bench.reports.agreement): the same predictions and scores, s(x) within its tolerance.
"""

import os
import time

import pytest
from ray_bench_support import cpu_description, load_average, local_cluster, private_ray_tmpdir, speedup_record

from tst_bench.backends import BackendContext, build_predictor
from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset, to_test_instance
from tst_bench.engine import run_tst
from tst_bench.models import resolve_model
from tst_bench.models.resident import torch_threads
from tst_bench.reports.agreement import agreement

pytestmark = pytest.mark.slow


def env_ints(name: str, default: str) -> list[int]:
    return [int(x) for x in os.environ.get(name, default).split(",")]


ROWS = env_ints("TST_BENCH_RAY_ROWS", "160")[0]
FOLD_COUNTS = env_ints("TST_BENCH_RAY_FOLD_COUNTS", "2,4,8")
WORKER_COUNTS = env_ints("TST_BENCH_RAY_WORKERS", "1,2")
INFERENCE_ROWS = 4000


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def hardware(extra: str = "") -> str:
    return f"{cpu_description()}, Ray CPU workers, load average {load_average()}{extra}"


def test_data_parallel_inference_speedup(benchmark):
    import torch

    source = resolve_model("tiny")
    records = load_dataset(f"synthetic:shortcut?rows={INFERENCE_ROWS}&seed=1").records
    instances = [to_test_instance(r) for r in records]
    figures: dict = {"pool_warm_s": [], "pool_cold_s": []}

    def sweep():
        predictor = build_predictor(BackendContext(RunConfig(dataset="unused"), source))
        predictor.predict(instances[:8])  # model loaded
        figures["sequential_threads"] = torch.get_num_threads()
        figures["sequential_s"], expected = timed(predictor.predict, instances)
        with torch_threads(1):
            figures["sequential_1_thread_s"], _ = timed(predictor.predict, instances)
        predictor.close()
        with local_cluster(num_gpus=0):
            for count in WORKER_COUNTS:
                config = RunConfig(dataset="unused", backend="ray_hf", workers=count, device="cpu")
                pool = build_predictor(BackendContext(config, source))
                try:
                    cold, _ = timed(pool.predict, instances[:8])
                    warm, got = timed(pool.predict, instances)
                finally:
                    pool.close()
                assert [r.prediction for r in got] == [r.prediction for r in expected]
                figures["pool_cold_s"].append(cold)
                figures["pool_warm_s"].append(warm)

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    record = speedup_record(
        "workers", WORKER_COUNTS, figures["pool_warm_s"], figures["sequential_s"], hardware()
    )
    benchmark.extra_info["tst_speedup"] = record
    benchmark.extra_info["inference"] = {
        "instances": INFERENCE_ROWS,
        "sequential_threads": figures["sequential_threads"],
        "sequential_s": round(figures["sequential_s"], 3),
        "sequential_1_thread_s": round(figures["sequential_1_thread_s"], 3),
        "pool_cold_start_s": [round(s, 3) for s in figures["pool_cold_s"]],
        "speedup_vs_1_thread": [
            round(figures["sequential_1_thread_s"] / s, 3) for s in figures["pool_warm_s"]
        ],
    }


def run_seconds(out, folds: int, **overrides) -> float:
    dataset = f"synthetic:shortcut?rows={ROWS}&seed=7"
    config = RunConfig(dataset=dataset, folds=folds, out=out, device="cpu", **overrides)
    seconds, _ = timed(lambda: run_tst(config, overwrite=True, progress=False))
    return seconds


def pays_from(folds: list[int], speedups: list[float]) -> int | None:
    """The smallest fold count from which every measured speedup is above 1."""
    for index, count in enumerate(folds):
        if all(speedup > 1.0 for speedup in speedups[index:]):
            return count
    return None


def baseline_threads() -> dict[str, int | None]:
    """Sequential baselines by name: torch's default thread count ("default") and/or fixed counts."""
    names = os.environ.get("TST_BENCH_RAY_BASELINE_THREADS", "default,1").split(",")
    return {
        ("sequential" if name == "default" else f"sequential_{name}_thread"): None
        if name == "default"
        else int(name)
        for name in names
    }


def test_fold_parallel_tst_speedup(benchmark, tmp_path):
    import torch

    widest = max(WORKER_COUNTS)
    most = max(FOLD_COUNTS)
    baselines = baseline_threads()
    seconds: dict[str, list[float]] = {name: [] for name in [*baselines, "ray"]}
    worker_seconds: list[float] = []

    def check_determinism(folds: int) -> None:
        """Ray workers run CPUs/N threads each, the baselines their own count: the contract across
        thread counts holds for every pair (same bytes at equal counts: tests/test_determinism.py)."""
        for name in baselines:
            contract = agreement(tmp_path / f"{name}{folds}", tmp_path / f"ray{folds}")
            assert contract.holds, f"{name} vs ray, {folds} folds: {contract.describe()}"

    def sweep():
        with private_ray_tmpdir():
            for folds in FOLD_COUNTS:
                for name, threads in baselines.items():
                    with torch_threads(threads or torch.get_num_threads()):
                        seconds[name].append(run_seconds(tmp_path / f"{name}{folds}", folds))
                seconds["ray"].append(
                    run_seconds(tmp_path / f"ray{folds}", folds, executor="ray", workers=widest)
                )
                check_determinism(folds)
            for count in WORKER_COUNTS:
                if count == widest:
                    worker_seconds.append(seconds["ray"][-1])
                else:
                    out = tmp_path / f"ray{most}w{count}"
                    worker_seconds.append(run_seconds(out, most, executor="ray", workers=count))

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    first = next(iter(baselines))
    speedup = {
        name: [s / r for s, r in zip(seconds[name], seconds["ray"], strict=True)] for name in baselines
    }
    benchmark.extra_info["tst_speedup"] = speedup_record(
        "workers",
        WORKER_COUNTS,
        worker_seconds,
        seconds[first][-1],
        hardware(f", {most} folds of {ROWS} rows"),
    )
    benchmark.extra_info["tst_speedup"]["baseline"] = (
        f"{first} ({baselines[first] or torch.get_num_threads()} threads)"
    )
    benchmark.extra_info["fold_sweep"] = {
        "rows": ROWS,
        "folds": FOLD_COUNTS,
        "ray_workers": widest,
        "torch_default_threads": torch.get_num_threads(),
        **{f"{name}_s": [round(s, 2) for s in values] for name, values in seconds.items()},
        **{f"speedup_vs_{name}": [round(s, 3) for s in values] for name, values in speedup.items()},
        **{
            f"ray_pays_from_folds_vs_{name}": pays_from(FOLD_COUNTS, values)
            for name, values in speedup.items()
        },
        "speedup_by_workers_at_most_folds": {
            name: [round(seconds[name][-1] / s, 3) for s in worker_seconds] for name in baselines
        },
    }
