"""A predictor and the trainer whose adapters it serves, composed (the TsT design's public name).

The fold contract that uses them (train, hand the device over, load, score, clean up) lives in
evaluator.py; this is only the pair and its settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..trainers.base import LLMTrainerInterface
from .base import LLMPredictorInterface


@dataclass
class TrainableLLMPredictorConfig:
    #: Keep each fold's adapter on disk after the fold (else it is deleted after scoring).
    save_adapters: bool = False


class TrainableLLMPredictor:
    """One predictor and one trainer, run fold by fold by `LLMEvaluator`."""

    def __init__(
        self,
        predictor: LLMPredictorInterface,
        trainer: LLMTrainerInterface,
        config: TrainableLLMPredictorConfig | None = None,
    ):
        self.predictor = predictor
        self.trainer = trainer
        self.config = config or TrainableLLMPredictorConfig()

    def close(self) -> None:
        self.predictor.close()
        self.trainer.close()
