"""How many Ray workers fit in the cluster and what each asks for.

A GPU worker asks for 1/workers_per_gpu of a GPU, so small models pack several workers onto one
GPU; without GPUs (or with `use_gpus` off) the workers split the CPUs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, TsTRuntimeError


@dataclass(frozen=True)
class WorkerResources:
    """What each worker asks Ray for; a GPU worker asks for 1/workers_per_gpu of a GPU."""

    count: int
    num_cpus: float
    num_gpus: float

    @property
    def torch_threads(self) -> int:
        return max(1, math.floor(self.num_cpus))

    def actor_options(self) -> dict[str, Any]:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "scheduling_strategy": "SPREAD"}


def check_worker_options(
    workers: int, workers_per_gpu: int, names: tuple[str, str] = ("--workers", "--workers-per-gpu")
) -> None:
    """An InputError for a worker count below 0 (0 fills the cluster) or a GPU share below 1;
    `names` are the options as the user wrote them."""
    if workers < 0:
        raise InputError(f"{names[0]} must be 0 (fill the cluster) or more, got {workers}")
    if workers_per_gpu < 1:
        raise InputError(f"{names[1]} must be at least 1, got {workers_per_gpu}")


def plan_workers(requested: int, workers_per_gpu: int = 1, use_gpus: bool = True) -> WorkerResources:
    """How many workers (0 = fill the cluster) and their share of it; fails if they cannot fit."""
    import ray

    check_worker_options(requested, workers_per_gpu)
    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    if use_gpus and gpus > 0:
        capacity = int(gpus * workers_per_gpu + 1e-9)
        count = requested or capacity
        if count > capacity:
            raise TsTRuntimeError(
                f"{count} workers at {workers_per_gpu} per GPU need {math.ceil(count / workers_per_gpu)}"
                f" GPU(s); the Ray cluster has {gpus:g} ({resource_summary(resources)})"
            )
        return WorkerResources(count, _share(min(1.0, cpus / count)), 1.0 / workers_per_gpu)
    count = requested or max(1, int(cpus))
    if cpus < 0.01 * count:
        raise TsTRuntimeError(
            f"the Ray cluster has no CPUs for {count} worker(s) ({resource_summary(resources)})"
        )
    return WorkerResources(count, _share(cpus / count), 0.0)


def not_placed(name: str, waited_s: float) -> TsTRuntimeError:
    """The error for a worker Ray could not place (its share is taken or the cluster is too small)."""
    import ray

    free = resource_summary(ray.available_resources())
    return TsTRuntimeError(
        f"{name} was not placed within {waited_s:.0f}s: the Ray cluster has {free} free"
        f" of {resource_summary(ray.cluster_resources())} (another job or pool may hold the rest)"
    )


def _share(value: float) -> float:
    return math.floor(value * 100) / 100


def resource_summary(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{resources.get(name, 0):g} {name}" for name in ("CPU", "GPU"))
