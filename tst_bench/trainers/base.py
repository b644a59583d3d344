"""The trainer interface: training data in, a LoRA adapter on disk out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..schemas import LoRAAdapterInfo, TrainingDatum


@dataclass(frozen=True)
class TrainingJob:
    """One adapter to train: a fold's training rows, where its adapter goes, and its seed."""

    training_data: Sequence[TrainingDatum]
    output_dir: Path
    seed: int | None = None


class LLMTrainerInterface(ABC):
    """Trains one adapter per call; the base model is never modified."""

    #: True when training needs the predictor's device memory released first (a trainer in
    #: another process); False when it shares the predictor's resident model.
    needs_exclusive_device: bool = True
    #: True when `train_many` trains its jobs together in one pass (callers then hand it a
    #: run's folds as one group); False when it trains them one after another.
    trains_folds_together: bool = False

    @abstractmethod
    def train(
        self, training_data: Sequence[TrainingDatum], output_dir: Path, seed: int | None = None
    ) -> LoRAAdapterInfo:
        """Train an adapter into `output_dir`; `seed` (else the config's) fixes init and order."""

    def train_many(self, jobs: Sequence[TrainingJob]) -> list[LoRAAdapterInfo]:
        """Train several adapters (e.g. every fold of a run); trainers that can share one pass
        over the base model between them override this. Results are in the order of `jobs`."""
        return [self.train(job.training_data, job.output_dir, seed=job.seed) for job in jobs]

    def close(self) -> None:
        """Release what the trainer holds (processes, memory)."""
