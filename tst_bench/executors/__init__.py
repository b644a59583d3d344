"""Fold executors; `make_executor` picks one by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import RunConfig
from ..errors import InputError
from ..evaluator import FoldObserver
from ..folds import FoldSpec
from ..models import ModelSource
from ..schemas import QARecord
from .base import FoldCallback, FoldExecutor
from .sequential import SequentialExecutor

EXECUTORS = ("sequential",)


def make_executor(
    config: RunConfig,
    source: ModelSource,
    records: Sequence[QARecord],
    adapter_dir: Callable[[FoldSpec], Path],
    observers: Sequence[FoldObserver] = (),
) -> FoldExecutor:
    if config.executor == "sequential":
        return SequentialExecutor(config, source, records, adapter_dir, observers)
    raise InputError(f"unknown executor {config.executor!r}; choose one of {EXECUTORS}")


__all__ = ["EXECUTORS", "FoldCallback", "FoldExecutor", "SequentialExecutor", "make_executor"]
