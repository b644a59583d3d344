"""What a TsT run of a session records, and where: the session's report, pytest-benchmark's
extra_info (when the test uses `benchmark`), --tst-results, the terminal.

extra_info keys (the report writer reads these from --benchmark-json / autosave files):
    tst_result        TsTResult.model_dump(mode="json"): score, baselines, per-fold scores, timings, memory
    tst_memory        MemoryReport: source (nvml|rss), why, readings before the run and per fold
    tst_memory_check  the clean-up check against --tst-memory-tolerance-mib, one row per fold and device
    tst_hardware      the machine (CPU, GPUs by UUID, NVML status)
    tst_config        the RunConfig of the run
    tst_run_dir       the run directory (result.json, samples.jsonl)
    tst_measures      set for a run that measures memory or speedup rather than the dataset's score
                      (a deliberate leak, `tst_runner(measures=...)`): the report's verdict leaves it out
    tst_speedup       speedup benchmarks only: {unit, counts, seconds, speedup, hardware}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RecordedRun:
    """One TsT run of the session (through `tst_runner`): what the report and the terminal show."""

    nodeid: str
    #: the run's name in the report: the test's name, `runN` added for a test's later runs
    name: str
    #: the extra_info keys above (runner.run_record)
    record: dict[str, Any]
    #: its lines in the terminal summary (headline, memory source and check)
    summary: str

    @property
    def run_dir(self) -> str:
        return self.record["tst_run_dir"]

    def benchmark_entry(self) -> dict[str, Any]:
        """The run as an entry of a pytest-benchmark JSON document, without timing statistics: how a
        test that does not use `benchmark` reaches the report."""
        return {"name": self.name, "fullname": self.nodeid, "stats": None, "extra_info": self.record}


def safe_name(nodeid: str) -> str:
    """A file name from a test id: `benchmarks/test_x.py::test_y[a-b]` -> `test_x.py-test_y-a-b`."""
    name = nodeid.split("/")[-1]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-")[:180]


def write_record(directory: Path, record: dict[str, Any]) -> Path:
    from ..jsonl import write_json

    path = directory / "tst_record.json"
    write_json(path, record)
    return path


def headline(nodeid: str, result: Any, seconds: float) -> str:
    baselines = result.baselines
    zero_shot = "n/a" if baselines.zero_shot is None else f"{baselines.zero_shot:.3f}"
    return (
        f"{nodeid}: {result.dataset} | {result.model} | {result.backend}/{result.trainer}:"
        f" TsT {result.metric} {result.score:.3f} ± {result.score_std:.3f} over {result.n_folds} folds"
        f" (majority {baselines.majority:.3f}, zero-shot {zero_shot}, chance {baselines.chance:.3f}),"
        f" {seconds:.1f}s"
    )


class SpeedupRecorder:
    """Seconds per worker/GPU count for each executor, as benchmarks of one session measure them.

    Each benchmark gets the curve measured so far (its own count included), so the entry of the
    largest count carries the whole curve; speedup is relative to count 1 of the same executor.
    """

    def __init__(self, unit: str, hardware: str):
        self.unit = unit
        self.hardware = hardware
        self.seconds: dict[str, dict[int, float]] = {}

    def add(self, executor: str, count: int, seconds: float) -> dict[str, Any]:
        self.seconds.setdefault(executor, {})[count] = seconds
        return self.curve(executor)

    def curve(self, executor: str) -> dict[str, Any]:
        measured = dict(sorted(self.seconds.get(executor, {}).items()))
        base = measured.get(1)
        return {
            "executor": executor,
            "unit": self.unit,
            "counts": list(measured),
            "seconds": list(measured.values()),
            "speedup": [base / value if base and value > 0 else None for value in measured.values()],
            "hardware": self.hardware,
        }


def format_speedup(curve: dict[str, Any]) -> str:
    cells = []
    for count, seconds, speedup in zip(curve["counts"], curve["seconds"], curve["speedup"], strict=True):
        ratio = f", {speedup:.2f}x" if speedup is not None else ""
        cells.append(f"{count} {curve['unit']}: {seconds:.1f}s{ratio}")
    return f"speedup ({curve['executor']} on {curve['hardware']}): " + "; ".join(cells)
