"""The training settings each kind of model gets by default (trainers/settings.py holds the fields).

`pretrained` models train with the settings' own defaults. The `tiny` random model learns the
planted shortcut only with a high rate and its embeddings and output layer trained in full (peft
`modules_to_save`). vLLM 0.32 refuses such adapters: it serves `modules_to_save` only for the
heads of classification models. It does serve LoRA *on* the embedding and output layers, and the
tiny model learns with that too, given a lower rate and more steps (lr 5e-3 diverges, 5 epochs
stay at the majority baseline): the servable recipe, which LlamaFactory trains for every backend
and the peft trainer trains when vLLM serves its adapters.
"""

from __future__ import annotations

from ..models import Recipe
from .settings import TrainingSettings

#: The linear layers of the tiny (Llama) model.
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

PRETRAINED = TrainingSettings()
TINY = TrainingSettings(learning_rate=5e-3, num_epochs=5, modules_to_save=("lm_head", "embed_tokens"))
SERVABLE_TINY = TrainingSettings(
    target_modules=(*LINEAR_MODULES, "embed_tokens", "lm_head"), learning_rate=2e-3, num_epochs=10
)


def recipe_settings(recipe: Recipe, servable: bool = False) -> TrainingSettings:
    """The settings a `recipe` model trains with; `servable`: adapters that vLLM can load."""
    if recipe == "tiny":
        return SERVABLE_TINY if servable else TINY
    return PRETRAINED
