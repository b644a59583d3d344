"""LoRA settings that vLLM can serve, for models whose default recipe it cannot.

The in-process recipe for the `tiny` model trains `lm_head` and `embed_tokens` in full (peft
`modules_to_save`). vLLM 0.32 refuses such adapters: it serves `modules_to_save` only for the
heads of classification models. It does serve LoRA *on* the embedding and output layers, and the
tiny model learns the planted shortcut with that too, given a lower rate and more steps (lr 5e-3
diverges, 5 epochs stay at the majority baseline). This recipe is what LlamaFactory trains for
every backend and what the peft trainer trains when vLLM serves its adapters.
"""

from __future__ import annotations

from typing import Any

from ..models import Recipe

#: The linear layers of the tiny (Llama) model.
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

SERVABLE_TINY_LORA: dict[str, Any] = {
    "lora_rank": 8,
    "lora_alpha": 16,
    "target_modules": [*LINEAR_MODULES, "embed_tokens", "lm_head"],
    "modules_to_save": None,
    "learning_rate": 2e-3,
    "num_epochs": 10,
    "batch_size": 16,
    "warmup_ratio": 0.1,
    "max_grad_norm": 1.0,
}


def servable_lora(recipe: Recipe) -> dict[str, Any]:
    """Trainer settings whose adapters vLLM can load; empty when the recipe's own already are."""
    return dict(SERVABLE_TINY_LORA) if recipe == "tiny" else {}
