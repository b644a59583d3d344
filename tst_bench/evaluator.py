"""LLMEvaluator: one fold of TsT (train on k-1 folds, predict the held-out one) and zero-shot."""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .datasets.prompts import to_test_instance, to_training_datum
from .folds import FoldSpec
from .metrics import score_answer
from .models.resident import free_memory
from .predictors.trainable import TrainableLLMPredictor
from .schemas import FoldMemory, FoldResult, FoldTimings, LLMPredictionResult, QARecord, SamplePrediction

logger = logging.getLogger(__name__)


class FoldObserver(Protocol):
    """Watches folds from outside the model code (the memory monitor is one)."""

    def fold_started(self, spec: FoldSpec) -> None: ...

    def fold_finished(self, spec: FoldSpec) -> FoldMemory | None:
        """Called after the fold's clean-up; may return what it measured."""


class LLMEvaluator:
    def __init__(
        self,
        trainable: TrainableLLMPredictor,
        records: Sequence[QARecord],
        observers: Sequence[FoldObserver] = (),
        worker_name: str | None = None,
    ):
        self.trainable = trainable
        self.records = {record.id: record for record in records}
        self.observers = list(observers)
        self.worker_name = worker_name

    def zero_shot(self, ids: Sequence[str] | None = None) -> list[LLMPredictionResult]:
        """The base model's predictions, no adapter: the zero-shot baseline.

        Cached device memory is handed back afterwards, as after each fold, so the first fold
        starts from what is really in use (the memory check's baseline).
        """
        self.trainable.predictor.unload_adapter()
        records = [self.records[i] for i in ids] if ids is not None else list(self.records.values())
        try:
            return self.trainable.predict([to_test_instance(record) for record in records])
        finally:
            free_memory()

    def evaluate_fold(self, spec: FoldSpec, base_seed: int, adapter_dir: Path) -> FoldResult:
        for observer in self.observers:
            observer.fold_started(spec)
        started = time.perf_counter()
        train = [self.records[i] for i in spec.train_ids]
        test = [self.records[i] for i in spec.test_ids]
        memory = None
        try:
            adapter = self.trainable.train_adapter(
                [to_training_datum(r) for r in train], adapter_dir, seed=spec.seed(base_seed)
            )
            trained = time.perf_counter()
            self.trainable.activate(adapter)
            loaded = time.perf_counter()
            predictions = self.trainable.predict([to_test_instance(r) for r in test])
            scored = time.perf_counter()
        finally:
            self.trainable.finish_fold()
            for observer in self.observers:
                memory = observer.fold_finished(spec) or memory
        samples = [sample_prediction(spec, r, p) for r, p in zip(test, predictions)]
        majority = majority_answers(train)
        majority_scores = [score_answer(r.format, r.answer, majority.get(r.format, "")) for r in test]
        return FoldResult(
            repeat=spec.repeat,
            fold=spec.fold,
            score=statistics.fmean(s.score for s in samples),
            majority_answer=majority,
            majority_score=statistics.fmean(majority_scores),
            n_train=len(train),
            n_test=len(test),
            timings=FoldTimings(
                train_s=trained - started,
                load_s=loaded - trained,
                score_s=scored - loaded,
                total_s=time.perf_counter() - started,
            ),
            adapter_size_bytes=adapter.size_bytes,
            memory=memory,
            worker=self.worker_name,
            samples=samples,
            feature_importances=adapter.feature_importances,
        )

    def close(self) -> None:
        self.trainable.close()


def sample_prediction(spec: FoldSpec, record: QARecord, prediction: LLMPredictionResult) -> SamplePrediction:
    score = score_answer(record.format, record.answer, prediction.prediction)
    return SamplePrediction(
        id=record.id,
        repeat=spec.repeat,
        fold=spec.fold,
        target=record.answer,
        prediction=prediction.prediction,
        correct=score >= 1.0,
        score=score,
        bias_score=prediction.bias_score,
        option_probs=prediction.option_probs,
    )


def majority_answers(train: Sequence[QARecord]) -> dict[str, str]:
    """Per answer format, the training folds' most common answer (the median for numbers)."""
    answers: dict[str, list[str]] = {}
    for record in train:
        answers.setdefault(record.format, []).append(record.answer)
    majority = {}
    for answer_format, values in answers.items():
        if answer_format == "num":
            majority[answer_format] = f"{statistics.median(float(v) for v in values):g}"
        else:
            counts = Counter(values)
            majority[answer_format] = min(counts, key=lambda value: (-counts[value], value))
    return majority
