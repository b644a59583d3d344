"""In-process transformers + peft predictor; the base model stays resident across folds."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..models.adapters import attach_adapter, detach_adapter
from ..models.options import ModelOptions
from ..models.resident import ResidentModel
from ..schemas import TestInstance
from .base import AdapterRef, PromptScoringPredictor, adapter_path
from .prompting import choice_token_ids, encode_prompts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HFPredictorConfig(ModelOptions):
    max_tokens: int = 16
    batch_size: int = 32


class HFPredictor(PromptScoringPredictor):
    """Batched scoring and generation with transformers; adapters attached through peft."""

    def __init__(self, config: HFPredictorConfig, resident: ResidentModel | None = None):
        self.config = config
        self.resident = resident or ResidentModel.for_options(config)
        self._adapted = None  # PeftModel wrapping the resident base while an adapter is on

    @property
    def tokenizer(self):
        return self.resident.tokenizer

    def load_adapter(self, adapter: AdapterRef) -> None:
        self.unload_adapter()
        self._adapted = attach_adapter(self.resident.model, adapter_path(adapter)).eval()

    def unload_adapter(self) -> None:
        if self._adapted is not None:
            self.resident.model = detach_adapter(self._adapted)
            self._adapted = None

    def reset(self) -> None:
        self._adapted = None
        self.resident.release()

    def _active_model(self):
        return self._adapted if self._adapted is not None else self.resident.model

    def choice_logprobs(self, instances: Sequence[TestInstance]) -> list[dict[str, float]]:
        import torch

        model = self._active_model()
        results: list[dict[str, float]] = [{} for _ in instances]
        for positions, input_ids, attention_mask in self._batches(instances, reserve=1):
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = model(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    logits_to_keep=1,
                ).logits[:, -1, :]
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            for row, position in enumerate(positions):
                choices = instances[position].choices or []
                token_ids = choice_token_ids(self.tokenizer, choices)
                results[position] = {
                    choice: float(logprobs[row, token_id])
                    for choice, token_id in zip(choices, token_ids, strict=True)
                }
        return results

    def generate_texts(self, instances: Sequence[TestInstance]) -> list[str]:
        import torch

        model = self._active_model()
        tokenizer = self.tokenizer
        texts = [""] * len(instances)
        for positions, input_ids, attention_mask in self._batches(instances, reserve=self.config.max_tokens):
            with torch.inference_mode():
                output = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    max_new_tokens=self.config.max_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            new_tokens = output[:, input_ids.shape[1] :]
            for row, position in enumerate(positions):
                texts[position] = tokenizer.decode(new_tokens[row], skip_special_tokens=True)
        return texts

    def _batches(self, instances: Sequence[TestInstance], reserve: int) -> Iterator[tuple]:
        """Length-sorted, left-padded batches: (original positions, input_ids, attention_mask)."""
        import torch

        max_prompt = max(8, self.config.max_seq_length - reserve)
        encoded = encode_prompts(self.tokenizer, instances, self.config.prompt_style, max_prompt)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        pad_id = self.tokenizer.pad_token_id
        device = self.resident.device
        for start in range(0, len(order), self.config.batch_size):
            positions = order[start : start + self.config.batch_size]
            width = max(len(encoded[i]) for i in positions)
            ids = [[pad_id] * (width - len(encoded[i])) + encoded[i] for i in positions]
            mask = [[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in positions]
            yield (
                positions,
                torch.tensor(ids, device=device),
                torch.tensor(mask, device=device),
            )
