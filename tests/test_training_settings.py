"""The training settings: one frozen value, checked when made, shared by both LoRA trainers."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from tst_bench.backends import BackendContext, build_trainer
from tst_bench.cli.run_options import parse_options
from tst_bench.config import RunConfig
from tst_bench.errors import InputError
from tst_bench.trainers.recipes import PRETRAINED, SERVABLE_TINY, TINY, recipe_settings
from tst_bench.trainers.settings import ALL_LINEAR, TrainingSettings


def test_settings_are_a_hashable_value_with_names_as_tuples():
    as_lists: dict[str, Any] = {"target_modules": ["q_proj", "v_proj"], "modules_to_save": ["lm_head"]}
    settings = TrainingSettings(**as_lists)  # as YAML or JSON give them
    assert settings.target_modules == ("q_proj", "v_proj") and settings.modules_to_save == ("lm_head",)
    assert hash(settings) == hash(
        TrainingSettings(target_modules=("q_proj", "v_proj"), modules_to_save=("lm_head",))
    )
    assert TrainingSettings(target_modules="all").target_modules == ALL_LINEAR  # LlamaFactory's name
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.learning_rate = 1.0  # pyright: ignore[reportAttributeAccessIssue]  (frozen: must raise)


def test_numbers_given_as_text_are_read_as_numbers():
    """YAML reads `1e-3` (no dot) as text: the settings still get a float."""
    from_yaml: dict[str, Any] = {"learning_rate": "1e-3", "num_epochs": "2", "lora_rank": 4.0}
    settings = TrainingSettings(**from_yaml)
    assert settings.learning_rate == 1e-3 and isinstance(settings.learning_rate, float)
    assert settings.num_epochs == 2 and isinstance(settings.num_epochs, int)
    assert settings.lora_rank == 4 and isinstance(settings.lora_rank, int)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"learning_rate": 0}, "learning_rate must be above 0, got 0"),
        ({"learning_rate": "fast"}, "learning_rate must be a number, got 'fast'"),
        ({"num_epochs": 1.5}, "num_epochs must be a whole number, got 1.5"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"lora_dropout": 1.5}, "lora_dropout must be between 0 and 1, got 1.5"),
        ({"seed": True}, "seed must be a whole number, got True"),
        ({"target_modules": []}, "target_modules must be module names, got []"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(values, message):
    with pytest.raises(InputError, match=f"^training settings: {re.escape(message)}"):
        TrainingSettings(**values)


def test_every_problem_is_named_at_once():
    with pytest.raises(
        InputError, match="lora_rank must be at least 1, got 0; batch_size must be at least 1"
    ):
        TrainingSettings(lora_rank=0, batch_size=0)


def test_recipes_are_settings():
    assert recipe_settings("pretrained") == PRETRAINED == TrainingSettings()
    assert recipe_settings("tiny") == TINY and TINY.modules_to_save == ("lm_head", "embed_tokens")
    assert recipe_settings("tiny", servable=True) == SERVABLE_TINY and SERVABLE_TINY.modules_to_save is None
    assert recipe_settings("pretrained", servable=True) == PRETRAINED


@pytest.mark.parametrize("trainer", ["peft", "llamafactory"])
def test_trainer_options_set_the_shared_settings(trainer, tiny_source):
    """`--trainer-option NAME=VALUE` sets the same setting whichever trainer runs (vLLM backend:
    both train the servable recipe)."""
    options = parse_options(["learning_rate=1e-3", "num_epochs=2", "lora_alpha=32"], "--trainer-option")
    config = RunConfig(dataset="d", backend="vllm", trainer=trainer, trainer_options=options)
    from tst_bench.trainers.llamafactory import LlamaFactoryTrainer
    from tst_bench.trainers.peft import PeftTrainer

    built_trainer = build_trainer(BackendContext(config, tiny_source))
    assert isinstance(built_trainer, PeftTrainer | LlamaFactoryTrainer)
    built = built_trainer.config
    expected = dataclasses.replace(SERVABLE_TINY, learning_rate=1e-3, num_epochs=2, lora_alpha=32)
    assert built.training == expected


def test_a_bad_trainer_option_is_an_input_error_naming_it(tiny_source):
    config = RunConfig(dataset="d", trainer_options={"lora_rank": 0})
    with pytest.raises(InputError, match="lora_rank must be at least 1, got 0"):
        build_trainer(BackendContext(config, tiny_source))
