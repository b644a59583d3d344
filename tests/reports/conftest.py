"""Report inputs for the tests: one real TsT run recorded by a real pytest-benchmark session.

`recorded` runs `pytest --benchmark-json` in a subprocess on a benchmark that calls `run_tst`
(tiny model, 120 synthetic rows, 3 folds), so the run directory and the benchmark JSON are what
the engine and pytest-benchmark actually write. Tests that need memory samples or a speedup
series (GPU-only measurements) derive copies with constructed values via `with_measurements`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tst_bench.schemas import DeviceMemory, FoldMemory, MemorySource, TsTResult

DATASET = "synthetic:shortcut?rows=120&seed=2"

BENCHMARK_MODULE = textwrap.dedent(
    f"""
    import os
    from pathlib import Path

    from tst_bench.config import RunConfig
    from tst_bench.engine import run_tst


    def test_tst_shortcut(benchmark):
        out = Path(os.environ["TST_FIXTURE_RUN_DIR"])
        config = RunConfig(dataset="{DATASET}", model="tiny", folds=3, seed=0, out=out)
        run = benchmark.pedantic(
            lambda: run_tst(config, overwrite=True, progress=False), rounds=1, iterations=1
        )
        benchmark.extra_info["tst_result"] = run.result.model_dump(mode="json")
        benchmark.extra_info["tst_run_dir"] = str(out)
    """
)


@dataclass(frozen=True)
class Recorded:
    run_dir: Path
    benchmark_json: Path

    @property
    def result(self) -> TsTResult:
        return TsTResult.model_validate_json((self.run_dir / "result.json").read_text())


@pytest.fixture(scope="session")
def recorded(tmp_path_factory) -> Recorded:
    root = tmp_path_factory.mktemp("recorded")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "bench_tst.py").write_text(BENCHMARK_MODULE)
    run_dir, benchmark_json = root / "run", root / "benchmark.json"
    env = {**os.environ, "TST_FIXTURE_RUN_DIR": str(run_dir)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "bench_tst.py"]
    completed = subprocess.run(
        [*command, f"--benchmark-json={benchmark_json}"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return Recorded(run_dir=run_dir, benchmark_json=benchmark_json)


def copy_run(source: Path, target: Path, result: TsTResult | None = None) -> Path:
    """A copy of a run directory, optionally with another result.json."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("adapters", "folds"))
    if result is not None:
        (target / "result.json").write_text(result.model_dump_json(indent=2))
    return target


def fold_memory(source: MemorySource, devices: dict[str, tuple[float, float, float]]) -> FoldMemory:
    """Constructed memory samples: device -> (before, peak, after clean-up) MiB."""

    def samples(phase: int) -> list[DeviceMemory]:
        return [DeviceMemory(device=d, used_mib=v[phase], total_mib=81559.0) for d, v in devices.items()]

    return FoldMemory(source=source, before=samples(0), peak=samples(1), after_cleanup=samples(2))


def with_memory(result: TsTResult, source: MemorySource = "nvml", retained_mib: float = 0.0) -> TsTResult:
    """The result with constructed per-fold memory on two GPUs; the last fold keeps `retained_mib`."""
    folds = []
    for index, fold in enumerate(result.folds):
        retained = retained_mib if index == len(result.folds) - 1 else 0.0
        memory = fold_memory(
            source,
            {
                "cuda:0": (1200.0, 9800.0 + 100 * index, 1200.0 + retained),
                "cuda:1": (900.0, 9100.0 + 50 * index, 900.0),
            },
        )
        folds.append(fold.model_copy(update={"memory": memory}))
    return result.model_copy(update={"folds": folds})


def speedup_series(two_gpu_speedup: float = 1.8, four_gpu_speedup: float = 3.2) -> dict:
    """A constructed speedup series in the shape the scaling benchmark records."""
    speedups = [1.0, two_gpu_speedup, four_gpu_speedup]
    seconds = [100.0 / s for s in speedups]
    return {
        "unit": "gpus",
        "counts": [1, 2, 4],
        "seconds": seconds,
        "speedup": speedups,
        "hardware": "test fixture",
    }


def with_measurements(
    recorded: Recorded,
    target: Path,
    retained_mib: float = 0.0,
    source: MemorySource = "nvml",
    speedup: dict | None = None,
    score: float | None = None,
) -> Path:
    """A benchmark JSON like the recorded one, plus constructed memory samples and speedup series."""
    document = json.loads(recorded.benchmark_json.read_text())
    bench = document["benchmarks"][0]
    result = TsTResult.model_validate(bench["extra_info"]["tst_result"])
    result = with_memory(result, source, retained_mib)
    if score is not None:
        result = result.model_copy(update={"score": score})
    bench["extra_info"]["tst_result"] = result.model_dump(mode="json")
    bench["extra_info"]["tst_speedup"] = speedup if speedup is not None else speedup_series()
    bench["extra_info"]["tst_hardware"] = "test fixture: constructed memory and speedup values"
    target.write_text(json.dumps(document, indent=2))
    return target


def with_flipped_samples(recorded: Recorded, target: Path, right_to_wrong: int, wrong_to_right: int) -> Path:
    """A copy of the recorded run whose first `right_to_wrong` correct samples are now wrong and first
    `wrong_to_right` wrong ones right (samples.jsonl and the score in result.json)."""
    lines = (recorded.run_dir / "samples.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in lines]
    to_flip = {True: right_to_wrong, False: wrong_to_right}
    for sample in samples:
        if to_flip[sample["correct"]] == 0:
            continue
        to_flip[sample["correct"]] -= 1
        wrong = "A" if sample["target"] != "A" else "B"
        sample["prediction"] = wrong if sample["correct"] else sample["target"]
        sample["correct"] = not sample["correct"]
        sample["score"] = 1.0 if sample["correct"] else 0.0
    assert to_flip == {True: 0, False: 0}, "the recorded run has too few right or wrong samples"
    result = recorded.result
    shift = (wrong_to_right - right_to_wrong) / len(samples)
    run = copy_run(recorded.run_dir, target, result.model_copy(update={"score": result.score + shift}))
    (run / "samples.jsonl").write_text("".join(json.dumps(sample) + "\n" for sample in samples))
    return run
