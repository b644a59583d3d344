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

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ray_bench_support import cpu_description, private_ray_tmpdir, speedup_record

from tst_bench.config import RunConfig
from tst_bench.engine import prepare_run, run_tst
from tst_bench.memory import DEFAULT_TOLERANCE_MIB
from tst_bench.models import resolve_model

pytestmark = pytest.mark.slow

MODEL = "random-qwen2-0.5b"
ROWS = int(os.environ.get("TST_BENCH_GPU_ROWS", "480"))
FOLDS = int(os.environ.get("TST_BENCH_GPU_FOLDS", "8"))
COUNTS = tuple(int(n) for n in os.environ.get("TST_BENCH_GPU_COUNTS", "1,2,4").split(","))
MIB = 2**20


def nvml_gpus() -> tuple[int, str]:
    """(number of NVIDIA GPUs, why not more): NVML, so no CUDA context is created here."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as error:  # no library, no driver: both mean no GPU measurements
        return 0, f"NVML not available ({type(error).__name__}: {error})"
    count = pynvml.nvmlDeviceGetCount()
    return count, f"{count} NVIDIA GPU(s) visible to NVML"


def used_mib(index: int) -> float:
    import pynvml

    return pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).used / MIB


def gpu_name(index: int = 0) -> str:
    import pynvml

    name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
    return name.decode() if isinstance(name, bytes) else name


class PeakMemory:
    """Samples NVML used memory of some GPUs every 0.1 s while a case runs."""

    def __init__(self, indices: list[int]):
        self.indices = indices
        self.peak = dict.fromkeys(indices, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for index in self.indices:
                self.peak[index] = max(self.peak[index], used_mib(index))

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def settle_to(indices: list[int], baseline: dict[int, float], timeout: float = 60.0) -> dict[int, float]:
    """Used memory once it is back within tolerance of `baseline` (or whatever it is at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        now = {i: used_mib(i) for i in indices}
        if all(now[i] <= baseline[i] + DEFAULT_TOLERANCE_MIB for i in indices) or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


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


def baseline_mib(out: Path, indices: list[int]) -> dict[int, float]:
    """Used memory before the Ray runs, once the driver has done what it does before any pool exists."""
    prepare_run(config(out, executor="ray"))  # validation builds (lazy) backends in this process
    return {i: used_mib(i) for i in indices}


def ray_case(out: Path, indices: list[int], before: dict[int, float], **overrides) -> dict:
    """One Ray run in this process: wall time, peak memory, and memory after the pool is gone."""
    with PeakMemory(indices) as peak:
        run = run_tst(config(out, executor="ray", **overrides), overwrite=True, progress=False)
    after = settle_to(indices, before)
    workers = sorted({fold.worker or "" for fold in run.folds})
    return {
        "seconds": run.result.wall_s,
        "workers": workers,
        "before_mib": before,
        "peak_mib": peak.peak,
        "after_teardown_mib": after,
        "returned": all(after[i] <= before[i] + DEFAULT_TOLERANCE_MIB for i in indices),
    }


def require_gpus(wanted: int) -> int:
    found, why = nvml_gpus()
    if found < wanted:
        pytest.skip(
            f"needs {wanted} NVIDIA GPU(s) and NVML; {why}. Runs on the GPU machine"
            " (PYTHONPATH=/tmp/site:. python -m pytest benchmarks/test_ray_gpu.py)"
        )
    return found


def hardware(gpus: int) -> str:
    return f"{gpus} x {gpu_name()} (NVML), {cpu_description()}, {MODEL}, {FOLDS} folds of {ROWS} rows"


def record(benchmark, counts, cases, sequential, gpus) -> None:
    seconds = [case["seconds"] for case in cases]
    benchmark.extra_info["tst_speedup"] = speedup_record(
        "workers" if gpus == 1 else "gpus", counts, seconds, sequential, hardware(gpus)
    )
    benchmark.extra_info["memory"] = {
        str(count): {k: v for k, v in case.items() if k != "seconds"} for count, case in zip(counts, cases)
    }
    benchmark.extra_info["memory_tolerance_mib"] = DEFAULT_TOLERANCE_MIB


def test_packing_fold_workers_on_one_gpu(benchmark, tmp_path):
    require_gpus(1)
    resolve_model(MODEL)  # built once, before anything is timed
    cases: list[dict] = []
    figures = {}

    def sweep():
        figures["sequential"] = sequential_seconds(tmp_path / "sequential")
        before = baseline_mib(tmp_path / "probe", [0])
        with private_ray_tmpdir():
            for count in COUNTS:
                out = tmp_path / f"pack{count}"
                cases.append(ray_case(out, [0], before, workers=count, workers_per_gpu=count, ray_gpus=1))

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    record(benchmark, COUNTS, cases, figures["sequential"], gpus=1)
    for count, case in zip(COUNTS, cases):
        assert len(case["workers"]) == count, case["workers"]
        assert all(name.endswith("gpu 0)") for name in case["workers"])
    not_returned = {count: case for count, case in zip(COUNTS, cases) if not case["returned"]}
    assert not not_returned, f"GPU memory did not return to its pre-run level: {not_returned}"


def test_one_two_four_gpus(benchmark, tmp_path):
    found = require_gpus(2)
    counts = [count for count in COUNTS if count <= found]
    resolve_model(MODEL)
    cases: list[dict] = []
    figures = {}

    def sweep():
        figures["sequential"] = sequential_seconds(tmp_path / "sequential")
        indices = list(range(max(counts)))
        before = baseline_mib(tmp_path / "probe", indices)
        with private_ray_tmpdir():
            for count in counts:
                cases.append(
                    ray_case(tmp_path / f"gpus{count}", indices, before, workers=count, ray_gpus=count)
                )

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    record(benchmark, counts, cases, figures["sequential"], gpus=found)
    targets = {2: 1.8, 4: 3.5}
    benchmark.extra_info["targets"] = {
        str(c): {"target": targets[c], "speedup": figures["sequential"] / case["seconds"]}
        for c, case in zip(counts, cases)
        if c in targets
    }
    assert all(case["returned"] for case in cases), [case["after_teardown_mib"] for case in cases]
