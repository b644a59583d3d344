"""How folds get run: one after another here, or spread over workers (see executors.ray)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..cluster.actors import split_evenly
from ..evaluator import FoldCallback
from ..folds import FoldSpec
from ..schemas import ZeroShotPass

__all__ = ["FoldCallback", "FoldExecutor", "training_passes"]

FoldGroup = tuple[FoldSpec, ...]


def training_passes(
    pending: Sequence[FoldSpec], folds_per_pass: int | None, parts: int = 1
) -> list[FoldGroup]:
    """The folds each `train_many` pass trains: at least `parts` passes (one per worker) of at most
    `folds_per_pass` folds each (None: no limit; 1: one fold a pass), contiguous, sizes differing
    by at most one. Each fold is still scored and persisted on its own, so a rerun resumes per fold."""
    if not pending:
        return []
    limit = len(pending) if folds_per_pass is None else max(1, folds_per_pass)
    count = max(min(parts, len(pending)), math.ceil(len(pending) / limit))
    return [tuple(group) for group in split_evenly(pending, count)]


class FoldExecutor(ABC):
    """Runs folds through the fold contract (evaluator.LLMEvaluator) somewhere: here, or on workers."""

    @abstractmethod
    def zero_shot(self) -> ZeroShotPass:
        """Predictions of the base model (no adapter) for every record, with the pass's timings."""

    @abstractmethod
    def run(self, pending: Sequence[FoldSpec], on_result: FoldCallback) -> None:
        """Run every pending fold, handing each FoldResult to `on_result` as soon as it exists."""

    def close(self) -> None:
        """Release models, workers and device memory."""

    def __enter__(self) -> FoldExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
