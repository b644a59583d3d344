"""Fold executors; `make_executor` picks one by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..cluster.connection import check_address, require_ray
from ..cluster.resources import check_worker_options
from ..config import RunConfig
from ..errors import InputError
from ..evaluator import FoldObserver
from ..folds import FoldSpec
from ..models import ModelSource
from ..registry import backend_spec
from ..schemas import QARecord
from .base import FoldCallback, FoldExecutor
from .sequential import SequentialExecutor

EXECUTORS = ("sequential", "ray")


def check_executor_options(config: RunConfig) -> None:
    """Executor settings that are wrong whatever the cluster looks like."""
    if config.executor not in EXECUTORS:
        raise InputError(f"unknown executor {config.executor!r}; choose one of {EXECUTORS}")
    check_worker_options(config.workers, config.workers_per_gpu)
    if config.ray_gpus is not None and config.ray_gpus < 0:
        raise InputError(f"--gpus must be 0 or more, got {config.ray_gpus}")
    if config.executor == "ray":
        require_ray("--executor ray")
    check_address(config.ray_address)
    if config.executor == "ray" and backend_spec(config.backend).pool_of is not None:
        raise InputError(
            f"--backend {config.backend} already spreads inference over Ray workers; use it with"
            " --executor sequential, or use --executor ray with the plain backend"
        )


def make_executor(
    config: RunConfig,
    source: ModelSource,
    records: Sequence[QARecord],
    adapter_dir: Callable[[FoldSpec], Path],
    observers: Sequence[FoldObserver] = (),
) -> FoldExecutor:
    if config.executor == "sequential":
        return SequentialExecutor(config, source, records, adapter_dir, observers)
    if config.executor == "ray":
        from .ray import RayExecutor

        return RayExecutor(config, source, records, adapter_dir, observers)
    raise InputError(f"unknown executor {config.executor!r}; choose one of {EXECUTORS}")


__all__ = [
    "EXECUTORS",
    "FoldCallback",
    "FoldExecutor",
    "SequentialExecutor",
    "check_executor_options",
    "make_executor",
]
