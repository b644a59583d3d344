"""Ray fold workers on NVIDIA GPUs: 1 vs 2 vs 4 workers packed on one GPU, and 1 vs 2 vs 4 GPUs.

The model is `random-qwen2-0.5b` (Qwen2-0.5B's shape, random weights): its figures are speed and
memory, not accuracy. Every case runs the same k-fold TsT end to end and compares with the
sequential executor on one GPU. The sequential run happens in a child process, so this process
never creates a CUDA context and NVML's used memory must return to its pre-run level once each Ray
pool is torn down (checked, not just recorded). Sizes: TST_BENCH_GPU_ROWS, TST_BENCH_GPU_FOLDS, and
TST_BENCH_GPU_COUNTS (worker or GPU counts, default 1,2,4).

Without NVIDIA GPUs (or NVML) every case skips and says why. On the GPU machine, from the
repository root: PYTHONPATH=/tmp/site:. python -m pytest benchmarks/test_ray_gpu.py -p no:cacheprovider
"""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray_bench_support import cpu_description, private_ray_tmpdir, speedup_record

from tst_bench.config import RunConfig
from tst_bench.engine import check_run, run_tst
from tst_bench.hardware import GpuDevice, discover_gpus, nvml_status
from tst_bench.memory import DEFAULT_TOLERANCE_MIB, NvmlProbe, PeakSampler
from tst_bench.models import resolve_model

pytestmark = pytest.mark.slow

MODEL = "random-qwen2-0.5b"
ROWS = int(os.environ.get("TST_BENCH_GPU_ROWS", "480"))
FOLDS = int(os.environ.get("TST_BENCH_GPU_FOLDS", "8"))
COUNTS = tuple(int(n) for n in os.environ.get("TST_BENCH_GPU_COUNTS", "1,2,4").split(","))


def require_gpus(wanted: int) -> tuple[GpuDevice, ...]:
    """The visible NVIDIA GPUs (found through NVML, so no CUDA context is created here), or a skip."""
    gpus = discover_gpus()
    if len(gpus) < wanted:
        pytest.skip(
            f"needs {wanted} NVIDIA GPU(s) and NVML; {nvml_status().describe()}, {len(gpus)} GPU(s) visible."
            " Runs on the GPU machine (PYTHONPATH=/tmp/site:. python -m pytest benchmarks/test_ray_gpu.py)"
        )
    return gpus


@contextlib.contextmanager
def nvml_probe(gpus: tuple[GpuDevice, ...]) -> Iterator[NvmlProbe]:
    probe = NvmlProbe(gpus)
    try:
        yield probe
    finally:
        probe.close()


def used_mib(probe: NvmlProbe) -> dict[str, float]:
    return {reading.device: reading.used_mib for reading in probe.read()}


def settle_to(probe: NvmlProbe, baseline: dict[str, float], timeout: float = 60.0) -> dict[str, float]:
    """Used memory once it is back within tolerance of `baseline` (or whatever it is at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        now = used_mib(probe)
        if returned(now, baseline) or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def returned(now: dict[str, float], baseline: dict[str, float]) -> bool:
    return all(now[device] <= baseline[device] + DEFAULT_TOLERANCE_MIB for device in baseline)


def config(out: Path, **overrides) -> RunConfig:
    dataset = f"synthetic:shortcut?rows={ROWS}&seed=11"
    return RunConfig(dataset=dataset, model=MODEL, folds=FOLDS, out=out, **overrides)


SEQUENTIAL_CHILD = """
import sys
from tst_bench.config import RunConfig
from tst_bench.engine import run_tst
dataset, model, folds, out = sys.argv[1:]
run = run_tst(RunConfig(dataset=dataset, model=model, folds=int(folds), out=out), progress=False)
print(run.result.wall_s)
"""


def sequential_seconds(out: Path, gpu: int = 0) -> float:
    """The sequential executor in a child process on one GPU; run_tst's own wall time."""
    command = [sys.executable, "-c", SEQUENTIAL_CHILD, config(out).dataset, MODEL, str(FOLDS), str(out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return float(completed.stdout.split()[-1])


def baseline_mib(out: Path, probe: NvmlProbe) -> dict[str, float]:
    """Used memory before the Ray runs, once the driver has done what it does before any pool exists."""
    check_run(config(out, executor="ray"))  # validation builds (lazy) backends in this process
    return used_mib(probe)


def ray_case(out: Path, probe: NvmlProbe, before: dict[str, float], **overrides) -> dict:
    """One Ray run in this process: wall time, peak memory, and memory after the pool is gone."""
    sampler = PeakSampler(probe)
    sampler.open(["run"])
    try:
        run = run_tst(config(out, executor="ray", **overrides), overwrite=True, progress=False)
    finally:
        window, _ = sampler.close("run")
    peak = window.peak
    after = settle_to(probe, before)
    workers = sorted({fold.worker or "" for fold in run.folds})
    return {
        "seconds": run.result.wall_s,
        "workers": workers,
        "before_mib": before,
        "peak_mib": {reading.device: reading.used_mib for reading in peak},
        "after_teardown_mib": after,
        "returned": returned(after, before),
    }


def hardware(gpus: tuple[GpuDevice, ...]) -> str:
    described = f"{len(gpus)} x {gpus[0].name} (NVML), {cpu_description()}"
    return f"{described}, {MODEL}, {FOLDS} folds of {ROWS} rows"


def record(benchmark, counts, cases, sequential, gpus: tuple[GpuDevice, ...]) -> None:
    seconds = [case["seconds"] for case in cases]
    benchmark.extra_info["tst_speedup"] = speedup_record(
        "workers" if len(gpus) == 1 else "gpus", counts, seconds, sequential, hardware(gpus)
    )
    benchmark.extra_info["memory"] = {
        str(count): {k: v for k, v in case.items() if k != "seconds"}
        for count, case in zip(counts, cases, strict=True)
    }
    benchmark.extra_info["memory_tolerance_mib"] = DEFAULT_TOLERANCE_MIB


def test_packing_fold_workers_on_one_gpu(benchmark, tmp_path):
    gpus = require_gpus(1)[:1]
    resolve_model(MODEL)  # built once, before anything is timed
    cases: list[dict] = []
    figures = {}

    def sweep():
        figures["sequential"] = sequential_seconds(tmp_path / "sequential")
        with nvml_probe(gpus) as probe, private_ray_tmpdir():
            before = baseline_mib(tmp_path / "probe", probe)
            for count in COUNTS:
                out = tmp_path / f"pack{count}"
                cases.append(ray_case(out, probe, before, workers=count, workers_per_gpu=count, ray_gpus=1))

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    record(benchmark, COUNTS, cases, figures["sequential"], gpus)
    for count, case in zip(COUNTS, cases, strict=True):
        assert len(case["workers"]) == count, case["workers"]
        assert all(name.endswith("gpu 0)") for name in case["workers"])
    not_returned = {count: case for count, case in zip(COUNTS, cases, strict=True) if not case["returned"]}
    assert not not_returned, f"GPU memory did not return to its pre-run level: {not_returned}"


def test_one_two_four_gpus(benchmark, tmp_path):
    found = require_gpus(2)
    counts = [count for count in COUNTS if count <= len(found)]
    resolve_model(MODEL)
    cases: list[dict] = []
    figures = {}

    def sweep():
        figures["sequential"] = sequential_seconds(tmp_path / "sequential")
        with nvml_probe(found[: max(counts)]) as probe, private_ray_tmpdir():
            before = baseline_mib(tmp_path / "probe", probe)
            for count in counts:
                cases.append(
                    ray_case(tmp_path / f"gpus{count}", probe, before, workers=count, ray_gpus=count)
                )

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    record(benchmark, counts, cases, figures["sequential"], found)
    targets = {2: 1.8, 4: 3.5}
    benchmark.extra_info["targets"] = {
        str(c): {"target": targets[c], "speedup": figures["sequential"] / case["seconds"]}
        for c, case in zip(counts, cases, strict=True)
        if c in targets
    }
    assert all(case["returned"] for case in cases), [case["after_teardown_mib"] for case in cases]
