"""In-process LoRA fine-tuning on the resident base model, every fold of a run in one pass.

`train_many` trains all jobs' adapters together on the one resident base (loop.py: each batch
carries rows of several folds, each row trains its own fold's adapter), with the loss on the
answer tokens only; `train` is the same code with one job. Each fold keeps its own seed (init and
data order), optimizer state, schedule, clipping and loss normalisation, so an adapter trained
with others equals the one trained alone (up to float summation order). Adapters are saved in
standard peft format; the base model is never modified.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError
from ...models import Recipe
from ...models.adapters import adapter_size_bytes
from ...models.resident import ResidentModel
from ...predictors.prompting import encode_prompt, encode_response
from ...schemas import LoRAAdapterInfo, TrainingDatum
from ..base import LLMTrainerInterface, TrainingJob
from ..recipes import recipe_settings
from ..settings import LoRATrainerConfig
from .adapter_files import save_adapter
from .attention import ATTENTION_MODES
from .loop import TrainedFolds, train_folds
from .lora_hooks import frozen
from .packing import Example

logger = logging.getLogger(__name__)
ADAPTER_DTYPES = ("auto", "float32")


@dataclass(frozen=True)
class PeftTrainerConfig(LoRATrainerConfig):
    """The model, the training settings (trainers/settings.py) and how a pass runs on the device."""

    #: Train all folds of a run in one pass over the base model (`train_many`), or one by one
    #: (same results). `auto`: together on CUDA, where it fills the GPU; one by one on a CPU,
    #: where compute, not launches, is the cost and longer packed lines make it ~10% slower.
    fold_batching: bool | str = "auto"
    #: Most folds one pass trains together (`auto`: every pending fold); more passes mean more
    #: memory checkpoints between them (the clean-up check compares passes) and less memory per pass.
    folds_per_pass: int | str = "auto"
    #: Most tokens (lines x longest line) in one forward pass; a step of more is split, same result.
    #: `auto`: what the device's available memory holds when the pass starts, at most 16,384.
    micro_batch_tokens: int | str = "auto"
    #: How packed rows attend: `packed` (masked SDPA), `varlen` (CUDA flash varlen), `auto`.
    attention: str = "auto"
    #: `auto` saves adapters in the base model's dtype when it is bf16, else fp32.
    adapter_dtype: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_config(self)

    @classmethod
    def for_recipe(cls, recipe: Recipe, servable: bool = False, **overrides) -> PeftTrainerConfig:
        """The recipe's settings (trainers/recipes.py; `servable`: adapters vLLM can load)."""
        return cls(**{**recipe_settings(recipe, servable).options(), **overrides})


class PeftTrainer(LLMTrainerInterface):
    needs_exclusive_device = False

    def __init__(self, config: PeftTrainerConfig, resident: ResidentModel | None = None):
        self.config = config
        self.resident = resident or ResidentModel.for_options(config)
        # `auto`: together on CUDA only (see the config field). With LoRA dropout the random draws
        # differ between a batch of one fold and of several, so folds then train one by one (same
        # code, one job per pass) to stay reproducible.
        wanted = (
            self.resident.device.startswith("cuda")
            if config.fold_batching == "auto"
            else config.fold_batching
        )
        self.trains_folds_together = bool(wanted) and config.lora_dropout == 0

    @property
    def folds_per_pass(self) -> int | None:
        if not self.trains_folds_together:
            return 1
        return None if self.config.folds_per_pass == "auto" else int(self.config.folds_per_pass)

    def prepare(self) -> None:
        self.resident.model  # noqa: B018 - loads the base model that stays resident for the run

    def train(
        self, training_data: Sequence[TrainingDatum], output_dir: Path, seed: int | None = None
    ) -> LoRAAdapterInfo:
        return self._train_together([TrainingJob(training_data, output_dir, seed)])[0]

    def train_many(self, jobs: Sequence[TrainingJob]) -> list[LoRAAdapterInfo]:
        if self.trains_folds_together:
            return self._train_together(jobs)
        return [self._train_together([job])[0] for job in jobs]

    def _train_together(self, jobs: Sequence[TrainingJob]) -> list[LoRAAdapterInfo]:
        config = self.config
        settings = config.training
        seeds = [settings.seed if job.seed is None else job.seed for job in jobs]
        started = time.perf_counter()
        examples = [self.encode(job.training_data) for job in jobs]
        model = self.resident.model
        save_dtype = self._save_dtype()
        with frozen(model):
            trained = train_folds(
                model,
                examples,
                seeds,
                settings,
                self._pad_id(),
                micro_batch_tokens=config.micro_batch_tokens,
                attention=config.attention,
            )
            for fold, job in enumerate(jobs):
                tensors = trained.weights.fold_tensors(fold)
                save_adapter(model, trained.peft_config, tensors, job.output_dir, save_dtype)
        seconds = time.perf_counter() - started
        logger.info("trained in %.1fs: %s", seconds, trained.stats.summary())
        return [
            self._info(job, seed, fold, trained, seconds)
            for fold, (job, seed) in enumerate(zip(jobs, seeds, strict=True))
        ]

    def _info(
        self, job: TrainingJob, seed: int, fold: int, trained: TrainedFolds, seconds: float
    ) -> LoRAAdapterInfo:
        jobs = trained.stats.folds
        return LoRAAdapterInfo(
            adapter_path=job.output_dir,
            training_size=len(job.training_data),
            model_name=self.resident.source.spec,
            training_config={
                **dataclasses.asdict(self.config),
                "seed": seed,
                "final_loss": trained.final_losses[fold],
                "trained_together": jobs,
                "attention_used": trained.stats.attention,
                "micro_batch_tokens_used": trained.stats.micro_batch_tokens,
                "out_of_memory_restarts": trained.stats.out_of_memory_restarts,
            },
            size_bytes=adapter_size_bytes(job.output_dir),
            train_seconds=seconds / jobs,
        )

    def _pad_id(self) -> int:
        tokenizer = self.resident.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def _save_dtype(self):
        import torch

        if self.config.adapter_dtype == "auto" and self.resident.dtype == torch.bfloat16:
            return torch.bfloat16
        return None

    def encode(self, training_data: Sequence[TrainingDatum]) -> list[Example]:
        """Prompt and answer token ids of each row, as training sees them."""
        tokenizer = self.resident.tokenizer
        examples = []
        for datum in training_data:
            response = encode_response(tokenizer, datum.response)
            budget = max(8, self.config.max_seq_length - len(response))
            prompt = encode_prompt(tokenizer, datum.instruction, self.config.prompt_style, budget)
            examples.append(Example(prompt, response))
        return examples


def _check_config(config: PeftTrainerConfig) -> None:
    if config.fold_batching not in (True, False, "auto"):
        raise InputError(f"fold_batching={config.fold_batching!r}: use true, false or auto")
    for name in ("folds_per_pass", "micro_batch_tokens"):
        _check_auto_or_positive(name, getattr(config, name))
    if config.attention not in ATTENTION_MODES:
        raise InputError(f"attention={config.attention!r}: use one of {', '.join(ATTENTION_MODES)}")
    if config.adapter_dtype not in ADAPTER_DTYPES:
        raise InputError(f"adapter_dtype={config.adapter_dtype!r}: use one of {', '.join(ADAPTER_DTYPES)}")


def _check_auto_or_positive(name: str, value: object) -> None:
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InputError(f"{name}={value!r}: use auto or a positive whole number")
