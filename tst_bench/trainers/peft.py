"""In-process LoRA fine-tuning with peft on the resident base model.

Each call adds a fresh adapter, trains it with the loss on the answer tokens only, saves only the
adapter weights and removes it again, so the base model is loaded once per run, not per fold.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..models import Recipe
from ..models.adapters import adapter_size_bytes, detach_adapter
from ..models.options import ModelOptions
from ..models.resident import ResidentModel
from ..predictors.prompting import encode_prompt, encode_response
from ..schemas import LoRAAdapterInfo, TrainingDatum
from .base import LLMTrainerInterface

logger = logging.getLogger(__name__)
IGNORE_INDEX = -100


@dataclass
class PeftTrainerConfig(ModelOptions):
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"
    modules_to_save: list[str] | None = None
    learning_rate: float = 2e-4
    num_epochs: int = 3
    batch_size: int = 16
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    seed: int = 0

    @classmethod
    def for_recipe(cls, recipe: Recipe, **overrides) -> PeftTrainerConfig:
        """Defaults that learn: the tiny random model needs a high rate and trainable embeddings."""
        if recipe == "tiny":
            base = cls(
                learning_rate=5e-3,
                num_epochs=5,
                batch_size=16,
                modules_to_save=["lm_head", "embed_tokens"],
            )
        else:
            base = cls()
        return dataclasses.replace(base, **overrides)


class PeftTrainer(LLMTrainerInterface):
    needs_exclusive_device = False

    def __init__(self, config: PeftTrainerConfig, resident: ResidentModel | None = None):
        self.config = config
        self.resident = resident or ResidentModel.for_options(config)

    def train(
        self, training_data: Sequence[TrainingDatum], output_dir: Path, seed: int | None = None
    ) -> LoRAAdapterInfo:
        import torch
        from peft import LoraConfig, get_peft_model

        config = self.config
        seed = config.seed if seed is None else seed
        started = time.perf_counter()
        examples = self._encode(training_data)
        torch.manual_seed(seed)
        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
            modules_to_save=config.modules_to_save,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(self.resident.model, lora)
        try:
            final_loss = self._fit(model, examples, seed)
            output_dir.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(str(output_dir))
        finally:
            self.resident.model = detach_adapter(model).eval()
        seconds = time.perf_counter() - started
        logger.debug("trained on %d examples in %.1fs, final loss %.4f", len(examples), seconds, final_loss)
        return LoRAAdapterInfo(
            adapter_path=output_dir,
            training_size=len(training_data),
            model_name=self.resident.source.spec,
            training_config={**dataclasses.asdict(config), "seed": seed, "final_loss": final_loss},
            size_bytes=adapter_size_bytes(output_dir),
            train_seconds=seconds,
        )

    def _encode(self, training_data: Sequence[TrainingDatum]) -> list[tuple[list[int], list[int]]]:
        tokenizer = self.resident.tokenizer
        examples = []
        for datum in training_data:
            response = encode_response(tokenizer, datum.response)
            budget = max(8, self.config.max_seq_length - len(response))
            prompt = encode_prompt(tokenizer, datum.instruction, self.config.prompt_style, budget)
            examples.append((prompt, response))
        return examples

    def _fit(self, model, examples: list[tuple[list[int], list[int]]], seed: int) -> float:
        import torch

        config = self.config
        device = self.resident.device
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        steps_per_epoch = -(-len(examples) // config.batch_size)
        total_steps = max(1, steps_per_epoch * config.num_epochs)
        warmup = int(total_steps * config.warmup_ratio)

        def lr_factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        shuffler = random.Random(seed)
        pad_id = self.resident.tokenizer.pad_token_id
        model.train()
        loss_value = float("nan")
        for epoch in range(config.num_epochs):
            order = list(range(len(examples)))
            shuffler.shuffle(order)
            for start in range(0, len(order), config.batch_size):
                batch = [examples[i] for i in order[start : start + config.batch_size]]
                input_ids, labels, mask = _collate(batch, pad_id, device)
                loss = model(input_ids=input_ids, attention_mask=mask, labels=labels, use_cache=False).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss_value = float(loss.detach())
            logger.debug("epoch %d/%d loss %.4f", epoch + 1, config.num_epochs, loss_value)
        model.eval()
        return loss_value


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int, device: str):
    """Right-padded input ids, labels masked to the answer tokens, and the attention mask."""
    import torch

    width = max(len(prompt) + len(response) for prompt, response in batch)
    ids, labels, mask = [], [], []
    for prompt, response in batch:
        padding = width - len(prompt) - len(response)
        ids.append(prompt + response + [pad_id] * padding)
        labels.append([IGNORE_INDEX] * len(prompt) + response + [IGNORE_INDEX] * padding)
        mask.append([1] * (len(prompt) + len(response)) + [0] * padding)
    as_tensor = lambda rows: torch.tensor(rows, device=device)  # noqa: E731
    return as_tensor(ids), as_tensor(labels), as_tensor(mask)
