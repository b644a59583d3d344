"""The trainer interface: training data in, a LoRA adapter on disk out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from ..schemas import LoRAAdapterInfo, TrainingDatum


class LLMTrainerInterface(ABC):
    """Trains one adapter per call; the base model is never modified."""

    #: True when training needs the predictor's device memory released first (a trainer in
    #: another process); False when it shares the predictor's resident model.
    needs_exclusive_device: bool = True

    @abstractmethod
    def train(
        self, training_data: Sequence[TrainingDatum], output_dir: Path, seed: int | None = None
    ) -> LoRAAdapterInfo:
        """Train an adapter into `output_dir`; `seed` (else the config's) fixes init and order."""

    def close(self) -> None:
        """Release what the trainer holds (processes, memory)."""
