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
    #: True when `train_many` trains several folds' adapters in one pass over the base model: the
    #: sequential executor then hands it every pending fold at once, the Ray executor one group
    #: of folds per worker.
    trains_folds_together: bool = False

    @property
    def folds_per_pass(self) -> int | None:
        """Most folds one `train_many` pass takes (None: every pending fold); 1 unless the trainer
        `trains_folds_together`. Executors split pending folds into passes of this size."""
        return None if self.trains_folds_together else 1

    @abstractmethod
    def train(
        self, training_data: Sequence[TrainingDatum], output_dir: Path, seed: int | None = None
    ) -> LoRAAdapterInfo:
        """Train an adapter into `output_dir`; `seed` (else the config's) fixes init and order."""

    def prepare(self) -> None:
        """Load what stays resident for the whole run (an in-process trainer's base model) before
        the first fold, so that fold's memory baseline already holds it."""

    def train_many(self, jobs: Sequence[TrainingJob]) -> list[LoRAAdapterInfo]:
        """Train several adapters (e.g. every fold of a run); trainers that can share one pass
        over the base model between them override this. Results are in the order of `jobs`."""
        return [self.train(job.training_data, job.output_dir, seed=job.seed) for job in jobs]

    def close(self) -> None:
        """Release what the trainer holds (processes, memory)."""
