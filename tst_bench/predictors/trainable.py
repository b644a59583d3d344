"""A predictor and a trainer composed: train an adapter on k-1 folds, then predict through it."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..models.resident import free_memory
from ..schemas import LLMPredictionResult, LoRAAdapterInfo, TestInstance, TrainingDatum
from ..trainers.base import LLMTrainerInterface
from .base import LLMPredictorInterface


@dataclass
class TrainableLLMPredictorConfig:
    save_adapters: bool = False
    adapter_prefix: str = "fold"


class TrainableLLMPredictor:
    """Owns the hand-off between inference and training on one device.

    Before training, the predictor drops its adapter; when the trainer runs elsewhere (another
    process that needs the device memory) the predictor releases the device first.
    """

    def __init__(
        self,
        predictor: LLMPredictorInterface,
        trainer: LLMTrainerInterface,
        config: TrainableLLMPredictorConfig | None = None,
    ):
        self.predictor = predictor
        self.trainer = trainer
        self.config = config or TrainableLLMPredictorConfig()
        self.current_adapter: LoRAAdapterInfo | None = None

    def prepare_for_training(self) -> None:
        self.predictor.unload_adapter()
        if self.trainer.needs_exclusive_device:
            self.predictor.release_device()

    def train_adapter(
        self, training_data: Sequence[TrainingDatum], output_dir: Path, seed: int | None = None
    ) -> LoRAAdapterInfo:
        self.prepare_for_training()
        return self.trainer.train(training_data, output_dir, seed=seed)

    def activate(self, adapter: LoRAAdapterInfo) -> None:
        self.predictor.load_adapter(adapter)
        self.current_adapter = adapter

    def train(
        self, training_data: Sequence[TrainingDatum], output_dir: Path, seed: int | None = None
    ) -> LoRAAdapterInfo:
        """Train an adapter and load it for inference (the original design's single call)."""
        adapter = self.train_adapter(training_data, output_dir, seed=seed)
        self.activate(adapter)
        return adapter

    def predict(self, instances: Sequence[TestInstance]) -> list[LLMPredictionResult]:
        return self.predictor.predict(instances)

    def finish_fold(self) -> None:
        """Drop the fold's adapter from the predictor and, unless kept, from disk.

        Then hand cached device memory back (gc + CUDA cache): the next fold, or another process
        sharing the GPU, gets it, and NVML shows what is really still in use.
        """
        self.predictor.unload_adapter()
        if self.current_adapter is not None and not self.config.save_adapters:
            shutil.rmtree(self.current_adapter.adapter_path, ignore_errors=True)
        self.current_adapter = None
        free_memory()

    def save(self, path: Path) -> None:
        if self.current_adapter is None:
            raise RuntimeError("no adapter trained yet")
        shutil.copytree(self.current_adapter.adapter_path, path, dirs_exist_ok=True)

    def close(self) -> None:
        self.predictor.close()
        self.trainer.close()
