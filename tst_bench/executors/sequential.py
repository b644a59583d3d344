"""Folds one after another in this process, on one device: the reference executor."""

from __future__ import annotations

from collections.abc import Sequence

from ..backends import build_trainable
from ..config import RunConfig
from ..evaluator import AdapterDir, FoldObserver, LLMEvaluator
from ..folds import FoldSpec
from ..models import ModelSource
from ..schemas import QARecord, ZeroShotPass
from .base import FoldCallback, FoldExecutor, training_passes


class SequentialExecutor(FoldExecutor):
    def __init__(
        self,
        config: RunConfig,
        source: ModelSource,
        records: Sequence[QARecord],
        adapter_dir: AdapterDir,
        observers: Sequence[FoldObserver] = (),
    ):
        self.adapter_dir = adapter_dir
        self.evaluator = LLMEvaluator(build_trainable(config, source), records, config.seed, observers)

    def zero_shot(self) -> ZeroShotPass:
        return self.evaluator.zero_shot()

    def run(self, pending: Sequence[FoldSpec], on_result: FoldCallback) -> None:
        for group in training_passes(pending, self.evaluator.trainer.folds_per_pass):
            self.evaluator.evaluate_group(group, self.adapter_dir, on_result)

    def close(self) -> None:
        self.evaluator.close()
