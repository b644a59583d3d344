"""LLMEvaluator: the fold contract (train, hand the device over, load, score, clean up) and zero-shot.

Everything one fold does happens here, whichever executor runs it:
1. the device hand-off (`hand_device_to_trainer`): the predictor drops its adapter and, when it
   holds device memory the trainer cannot share, releases it;
2. training, for a group of folds at once (`LLMTrainerInterface.train_many`; a group is one fold
   unless the trainer `trains_folds_together`);
3. per fold: load its adapter, predict the held-out fold, clean up (adapter off, off disk unless
   kept, cached device memory handed back), compute scores and s(x), hand the FoldResult on.

Predictors see prompts only: they return predictions and option (log-)probabilities, and s(x)
is computed here from those and the record's answer (`bias_score`). Fold observers (the memory
monitor, observers.py) hear of each training pass and fold before training and close each fold's
window after its clean-up; `FoldObservers.finished` is where what they measured joins a FoldResult.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .datasets.prompts import to_test_instance, to_training_datum
from .folds import FoldSpec
from .metrics import score_answer
from .models.resident import free_memory
from .observers import FoldObserver, FoldObservers
from .predictors.base import LLMPredictorInterface
from .predictors.trainable import TrainableLLMPredictor
from .schemas import (
    FoldResult,
    FoldTimings,
    LLMPredictionResult,
    LoRAAdapterInfo,
    QARecord,
    SamplePrediction,
    ZeroShotPass,
)
from .trainers.base import LLMTrainerInterface, TrainingJob

logger = logging.getLogger(__name__)

FoldCallback = Callable[[FoldResult], None]
AdapterDir = Callable[[FoldSpec], Path]


def hand_device_to_trainer(predictor: LLMPredictorInterface, trainer: LLMTrainerInterface) -> None:
    """The device hand-off before training, in one place.

    The predictor always drops its adapter (the trainer starts from the base model). It releases
    its device memory whenever it holds some of its own outside a model it shares with the trainer:
    a predictor that `owns_device_memory` (the vLLM engine: sleep or teardown, per its
    engine_strategy) always, and any predictor when the trainer runs in another process
    (`needs_exclusive_device`), which cannot use the resident model.
    """
    predictor.unload_adapter()
    if predictor.owns_device_memory or trainer.needs_exclusive_device:
        predictor.release_device()


class LLMEvaluator:
    """Runs folds and the zero-shot baseline on one predictor + trainer pair."""

    def __init__(
        self,
        trainable: TrainableLLMPredictor,
        records: Sequence[QARecord],
        base_seed: int = 0,
        observers: Sequence[FoldObserver] = (),
        worker_name: str | None = None,
    ):
        self.trainable = trainable
        self.records = {record.id: record for record in records}
        self.base_seed = base_seed
        self.observers = FoldObservers(observers)
        self.worker_name = worker_name

    @property
    def predictor(self) -> LLMPredictorInterface:
        return self.trainable.predictor

    @property
    def trainer(self) -> LLMTrainerInterface:
        return self.trainable.trainer

    def zero_shot(self) -> ZeroShotPass:
        """The base model's predictions, no adapter, with s(x): the zero-shot baseline, with the
        pass's seconds and engine events.

        Cached device memory is handed back afterwards, as after each fold, so the first fold
        starts from what is really in use (the memory check's baseline).
        """
        started = time.perf_counter()
        self.predictor.unload_adapter()
        records = list(self.records.values())
        try:
            predictions = self.predictor.predict([to_test_instance(record) for record in records])
        finally:
            free_memory()
        events = self.predictor.take_event_timings()
        if events:
            logger.info("zero-shot baseline: %s", describe_events(events))
        return ZeroShotPass(
            predictions=[with_bias_score(r, p) for r, p in zip(records, predictions, strict=True)],
            seconds=time.perf_counter() - started,
            events=events,
        )

    def evaluate_fold(self, spec: FoldSpec, adapter_dir: Path) -> FoldResult:
        """One fold on its own (a group of one)."""
        results: list[FoldResult] = []
        self.evaluate_group([spec], lambda _: adapter_dir, results.append)
        (result,) = results
        return result

    def evaluate_group(
        self, specs: Sequence[FoldSpec], adapter_dir: AdapterDir, on_result: FoldCallback
    ) -> None:
        """Train the folds' adapters in one `train_many` call, then load, score and clean up each
        fold in turn, handing its FoldResult to `on_result` (which persists it) before the next."""
        self.trainer.prepare()
        self.observers.started(specs)
        unfinished = list(specs)
        adapters: list[LoRAAdapterInfo] = []
        try:
            started = time.perf_counter()
            adapters = self._train(specs, adapter_dir)
            train_s = (time.perf_counter() - started) / len(specs)
            train_events = {name: s / len(specs) for name, s in self.predictor.take_event_timings().items()}
            for spec, adapter in zip(specs, adapters, strict=True):
                result = self._score_fold(spec, adapter, train_s, train_events, len(specs))
                unfinished.remove(spec)
                on_result(self.observers.finished(spec, result))
        finally:
            for spec, adapter in zip(specs, adapters, strict=False):
                if spec in unfinished:
                    self._remove(adapter)
            for spec in unfinished:
                self.observers.abandoned(spec)

    def _train(self, specs: Sequence[FoldSpec], adapter_dir: AdapterDir) -> list[LoRAAdapterInfo]:
        hand_device_to_trainer(self.predictor, self.trainer)
        jobs = [
            TrainingJob(
                [to_training_datum(self.records[i]) for i in spec.train_ids],
                adapter_dir(spec),
                seed=spec.seed(self.base_seed),
            )
            for spec in specs
        ]
        return self.trainer.train_many(jobs)

    def _score_fold(
        self,
        spec: FoldSpec,
        adapter: LoRAAdapterInfo,
        train_s: float,
        train_events: Mapping[str, float],
        trained_together: int,
    ) -> FoldResult:
        test = [self.records[i] for i in spec.test_ids]
        events = dict(train_events)
        started = time.perf_counter()
        try:
            self.predictor.load_adapter(adapter)
            loaded = time.perf_counter()
            add_events(events, self.predictor.take_event_timings())
            predictions = self.predictor.predict([to_test_instance(record) for record in test])
            scored = time.perf_counter()
            add_events(events, self.predictor.take_event_timings())
        finally:
            self._clean_up(adapter)
            add_events(events, self.predictor.take_event_timings())
        train = [self.records[i] for i in spec.train_ids]
        samples = [sample_prediction(spec, r, p) for r, p in zip(test, predictions, strict=True)]
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
                train_s=train_s,
                load_s=loaded - started,
                score_s=scored - loaded,
                total_s=train_s + time.perf_counter() - started,
                events=events,
                trained_together=trained_together,
            ),
            adapter_size_bytes=adapter.size_bytes,
            worker=self.worker_name,
            samples=samples,
            feature_importances=adapter.feature_importances,
        )

    def _clean_up(self, adapter: LoRAAdapterInfo) -> None:
        """Drop the fold's adapter from the predictor and, unless kept, from disk.

        Then hand cached device memory back (gc + CUDA cache): the next fold, or another process
        sharing the GPU, gets it, and NVML shows what is really still in use.
        """
        self.predictor.unload_adapter()
        self._remove(adapter)
        free_memory()

    def _remove(self, adapter: LoRAAdapterInfo) -> None:
        if not self.trainable.config.save_adapters:
            shutil.rmtree(adapter.adapter_path, ignore_errors=True)

    def close(self) -> None:
        self.trainable.close()


def bias_score(record: QARecord, prediction: LLMPredictionResult) -> float:
    """s(x): for multiple choice the predicted probability of the true option (renormalised over
    the options); for numbers and open answers the answer's own score (MRA, exact match)."""
    if record.format == "mc" and prediction.option_probs is not None:
        return prediction.option_probs.get(record.answer, 0.0)
    return score_answer(record.format, record.answer, prediction.prediction)


def with_bias_score(record: QARecord, prediction: LLMPredictionResult) -> LLMPredictionResult:
    return prediction.model_copy(update={"bias_score": bias_score(record, prediction)})


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
        bias_score=bias_score(record, prediction),
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


def add_events(total: dict[str, float], more: Mapping[str, float]) -> None:
    for name, seconds in more.items():
        total[name] = total.get(name, 0.0) + seconds


def describe_events(events: Mapping[str, float]) -> str:
    """`engine_build 3.1s, engine_sleep 0.4s`, in the order the predictor reported them."""
    return ", ".join(f"{name} {seconds:.1f}s" for name, seconds in events.items())
