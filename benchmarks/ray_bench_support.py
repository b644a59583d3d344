"""Shared by the Ray benchmarks: a private local cluster, the machine's description, speedup records."""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tst_bench.cluster.connection import ClusterOptions, acquire


@contextlib.contextmanager
def private_ray_tmpdir() -> Iterator[Path]:
    """A short RAY_TMPDIR of our own, so nothing here touches another Ray on the machine."""
    directory = Path(tempfile.mkdtemp(prefix="tstbench-ray-", dir="/tmp"))
    previous = {name: os.environ.get(name) for name in ("RAY_TMPDIR", "RAY_ADDRESS")}
    os.environ["RAY_TMPDIR"] = str(directory)
    os.environ.pop("RAY_ADDRESS", None)
    try:
        yield directory
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def local_cluster(num_gpus: int | None, num_cpus: int | None = None) -> Iterator[None]:
    with private_ray_tmpdir(), acquire(ClusterOptions(num_gpus=num_gpus, num_cpus=num_cpus)):
        yield


def cpu_description() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPU cores ({model})"


def load_average() -> list[float]:
    with contextlib.suppress(OSError):
        return [round(x, 2) for x in os.getloadavg()]
    return []


def speedup_record(
    unit: str, counts: Sequence[int], seconds: Sequence[float], baseline_s: float, hardware: str
) -> dict[str, Any]:
    """The `extra_info["tst_speedup"]` layout the report writer reads; speedup = baseline / seconds."""
    return {
        "unit": unit,
        "counts": list(counts),
        "seconds": [round(s, 3) for s in seconds],
        "speedup": [round(baseline_s / s, 3) for s in seconds],
        "baseline_seconds": round(baseline_s, 3),
        "hardware": hardware,
    }
