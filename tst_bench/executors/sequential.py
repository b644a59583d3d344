"""Folds one after another in this process, on one device: the reference executor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..backends import build_trainable
from ..config import RunConfig
from ..evaluator import FoldObserver, LLMEvaluator
from ..folds import FoldSpec
from ..models import ModelSource
from ..schemas import LLMPredictionResult, QARecord
from .base import FoldCallback, FoldExecutor


class SequentialExecutor(FoldExecutor):
    def __init__(
        self,
        config: RunConfig,
        source: ModelSource,
        records: Sequence[QARecord],
        adapter_dir: Callable[[FoldSpec], Path],
        observers: Sequence[FoldObserver] = (),
    ):
        self.config = config
        self.adapter_dir = adapter_dir
        self.evaluator = LLMEvaluator(build_trainable(config, source), records, observers)

    def zero_shot(self) -> list[LLMPredictionResult]:
        return self.evaluator.zero_shot()

    def run(self, pending: Sequence[FoldSpec], on_result: FoldCallback) -> None:
        for spec in pending:
            on_result(self.evaluator.evaluate_fold(spec, self.config.seed, self.adapter_dir(spec)))

    def close(self) -> None:
        self.evaluator.close()
