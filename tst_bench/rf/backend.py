"""The TsT-RF trainer and predictor, registered as the `rf` backend and trainer.

Per fold the trainer fits one forest per answer format present in the training folds: for
multiple choice a classifier of "this option is the answer" over option rows, for numeric
answers a regressor of the signed log of the value, for open-ended answers a classifier over the
training answers. The fold's adapter directory holds `features.json` (vocabularies, priors) and
one `forest_<format>.npz` per forest; nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, TsTRuntimeError
from ..jsonl import write_json
from ..models.adapters import adapter_size_bytes
from ..predictors.base import (
    AdapterRef,
    LLMPredictorInterface,
    adapter_path,
    result_from_choice_logprobs,
    result_from_generation,
)
from ..schemas import AnswerFormat, LLMPredictionResult, LoRAAdapterInfo, TestInstance, TrainingDatum
from ..trainers.base import LLMTrainerInterface
from .features import BlindQuestion, FeatureSpace, from_test_instance, from_training_datum
from .forest import TreeEnsemble

logger = logging.getLogger(__name__)
MODEL_NAME = "random-forest"
FEATURES_FILE = "features.json"
_PROBABILITY_FLOOR = 1e-9


@dataclass
class RFConfig:
    """Forest and feature settings; `--trainer-option KEY=VALUE` overrides any of them."""

    n_estimators: int = 100
    max_depth: int | None = None
    min_samples_leaf: int = 5
    max_features: str | float | None = "sqrt"
    question_vocab: int = 300
    option_vocab: int = 200
    min_df: int = 2
    n_jobs: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_estimators < 1:
            raise InputError(f"rf n_estimators must be positive, got {self.n_estimators}")
        if self.min_samples_leaf < 1 or self.min_df < 1:
            raise InputError("rf min_samples_leaf and min_df must be at least 1")
        if self.question_vocab < 0 or self.option_vocab < 0:
            raise InputError("rf question_vocab and option_vocab must not be negative")


@dataclass(frozen=True)
class RFPredictorConfig:
    """The rf predictor has no settings of its own; the class exists so unknown options are refused."""


class RFTrainer(LLMTrainerInterface):
    needs_exclusive_device = False

    def __init__(self, config: RFConfig | None = None):
        self.config = config or RFConfig()

    def train(
        self, training_data: Sequence[TrainingDatum], output_dir: Path, seed: int | None = None
    ) -> LoRAAdapterInfo:
        started = time.perf_counter()
        questions = [from_training_datum(datum) for datum in training_data]
        if not questions:
            raise TsTRuntimeError("rf: no training rows in this fold")
        config = self.config
        space = FeatureSpace.fit(questions, config.question_vocab, config.option_vocab, config.min_df)
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        formats: list[AnswerFormat] = sorted({q.format for q in questions})
        importances: dict[str, float] = {}
        for answer_format in formats:
            subset = [q for q in questions if q.format == answer_format]
            forest, names = self._fit(space, answer_format, subset, config.seed if seed is None else seed)
            TreeEnsemble.from_sklearn(forest).save(output_dir / f"forest_{answer_format}.npz")
            prefix = f"{answer_format}/" if len(formats) > 1 else ""
            for name, value in zip(names, forest.feature_importances_, strict=True):
                if value > 0:
                    importances[prefix + name] = float(value)
        write_json(output_dir / FEATURES_FILE, {**space.to_dict(), "formats": formats})
        return LoRAAdapterInfo(
            adapter_path=output_dir,
            training_size=len(questions),
            model_name=MODEL_NAME,
            training_config=dataclasses.asdict(config),
            size_bytes=adapter_size_bytes(output_dir),
            train_seconds=time.perf_counter() - started,
            feature_importances=dict(sorted(importances.items(), key=lambda item: -item[1])),
        )

    def _fit(
        self, space: FeatureSpace, answer_format: AnswerFormat, questions: list[BlindQuestion], seed: int
    ):
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        config = self.config
        settings: dict[str, Any] = {
            "n_estimators": config.n_estimators,
            "max_depth": config.max_depth,
            "min_samples_leaf": config.min_samples_leaf,
            "max_features": config.max_features,
            "n_jobs": config.n_jobs,
            "random_state": seed,
        }
        if answer_format == "mc":
            forest = RandomForestClassifier(**settings)
            forest.fit(space.option_rows(questions, training=True), space.option_targets(questions))
            return forest, space.option_feature_names()
        features = space.question_rows(questions)
        if answer_format == "num":
            forest = RandomForestRegressor(**settings)
            forest.fit(features, [signed_log(float(q.answer or 0)) for q in questions])
        else:
            forest = RandomForestClassifier(**settings)
            forest.fit(features, np.array([q.answer or "" for q in questions], dtype=str))
        return forest, space.question_feature_names()


@dataclass
class FittedForests:
    space: FeatureSpace
    forests: dict[str, TreeEnsemble]

    @classmethod
    def load(cls, directory: Path) -> FittedForests:
        features_path = directory / FEATURES_FILE
        if not features_path.exists():
            raise TsTRuntimeError(f"{directory} holds no fitted rf model ({FEATURES_FILE} missing)")
        data = json.loads(features_path.read_text())
        forests = {
            answer_format: TreeEnsemble.load(directory / f"forest_{answer_format}.npz")
            for answer_format in data["formats"]
        }
        return cls(FeatureSpace.from_dict(data), forests)


class RFPredictor(LLMPredictorInterface):
    """Predicts held-out questions with a fold's fitted forests (loaded from its adapter dir)."""

    def __init__(self, config: RFPredictorConfig | None = None):
        self.config = config or RFPredictorConfig()
        self._fitted: FittedForests | None = None

    def load_adapter(self, adapter: AdapterRef) -> None:
        self._fitted = FittedForests.load(adapter_path(adapter))

    def unload_adapter(self) -> None:
        self._fitted = None

    def reset(self) -> None:
        self._fitted = None

    def predict(self, instances: Sequence[TestInstance]) -> list[LLMPredictionResult]:
        if self._fitted is None:
            raise TsTRuntimeError("the rf predictor has no fitted forest: load a fold's adapter first")
        questions = [from_test_instance(instance) for instance in instances]
        results: list[LLMPredictionResult | None] = [None] * len(instances)
        for answer_format in ("mc", "num", "oe"):
            positions = [i for i, q in enumerate(questions) if q.format == answer_format]
            if not positions:
                continue
            forest = self._fitted.forests.get(answer_format)
            if forest is None:
                raise TsTRuntimeError(
                    f"rf: the training folds held no {answer_format!r} questions, so none can be predicted"
                )
            batch = [questions[i] for i in positions]
            predicted = self._predict_format(forest, answer_format, batch, [instances[i] for i in positions])
            for position, result in zip(positions, predicted, strict=True):
                results[position] = result
        return [result for result in results if result is not None]

    def _predict_format(
        self,
        forest: TreeEnsemble,
        answer_format: str,
        questions: list[BlindQuestion],
        instances: list[TestInstance],
    ) -> list[LLMPredictionResult]:
        assert self._fitted is not None
        space = self._fitted.space
        if answer_format == "mc":
            positive = list(forest.classes).index(1.0) if 1.0 in forest.classes else None
            probabilities = forest.predict_proba(space.option_rows(questions))
            results, row = [], 0
            for question, instance in zip(questions, instances, strict=True):
                count = len(question.options)
                scores = (
                    probabilities[row : row + count, positive] if positive is not None else np.zeros(count)
                )
                row += count
                logprobs = {
                    letter: math.log(max(float(score), _PROBABILITY_FLOOR))
                    for letter, score in zip(question.letters, scores, strict=True)
                }
                results.append(result_from_choice_logprobs(instance, logprobs))
            return results
        predictions = forest.predict(space.question_rows(questions))
        if answer_format == "num":
            texts = [f"{signed_exp(float(value)):g}" for value in predictions]
        else:
            texts = [str(value) for value in predictions]
        return [
            result_from_generation(instance, text) for instance, text in zip(instances, texts, strict=True)
        ]


def signed_log(value: float) -> float:
    """Numbers are regressed on a log scale: relative error is what MRA rewards."""
    return math.copysign(math.log1p(abs(value)), value)


def signed_exp(value: float) -> float:
    return math.copysign(math.expm1(abs(value)), value)
