"""How folds get run: one after another here, or spread over workers (see executors.ray)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..evaluator import FoldCallback
from ..folds import FoldSpec
from ..schemas import ZeroShotPass

__all__ = ["FoldCallback", "FoldExecutor"]


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
