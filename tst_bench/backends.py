"""Building a run's predictor and trainer from their registered names (tst_bench/registry.py).

Builders get a `BackendContext`: the run's config, the resolved model and, for in-process engines,
the one resident base model they share. Options given as `--predictor-option KEY=VALUE` /
`--trainer-option KEY=VALUE` override the fields of the engine's config dataclass and are checked
against them (`configure`).
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import PydanticSchemaGenerationError, TypeAdapter, ValidationError

from .config import RunConfig
from .errors import InputError, UnknownOptionsError
from .models import ModelSource
from .models.resident import ResidentModel
from .predictors.base import LLMPredictorInterface
from .predictors.trainable import TrainableLLMPredictor, TrainableLLMPredictorConfig
from .registry import backend_spec, check_pairing, load_builder, trainer_spec
from .trainers.base import LLMTrainerInterface

logger = logging.getLogger(__name__)


@dataclass
class BackendContext:
    """What builders need; in-process engines share one resident base model through it."""

    config: RunConfig
    source: ModelSource
    #: The shared base model; made on the first `resident()` call when not given.
    shared_resident: ResidentModel | None = None

    def resident(self) -> ResidentModel:
        if self.shared_resident is None:
            self.shared_resident = resident_model(self.config, self.source)
        return self.shared_resident


def resident_model(config: RunConfig, source: ModelSource) -> ResidentModel:
    """A base model loaded (on first use) the way `config` asks: device, dtype, remote code."""
    return ResidentModel(
        source, device=config.device, dtype=config.dtype, trust_remote_code=config.trust_remote_code
    )


def configure(config_type: type, options: dict[str, Any], **defaults: Any):
    """Build a config dataclass from defaults plus user options, rejecting unknown option names
    and values of the wrong type (before any work, rather than as a TypeError mid-run)."""
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UnknownOptionsError(
            f"unknown option(s) {unknown} for {config_type.__name__}; known: {sorted(known)}", unknown
        )
    values = {**defaults, **typed_options(config_type, options)}
    if hasattr(config_type, "for_recipe"):
        recipe = values.pop("recipe")
        return config_type.for_recipe(recipe, **values)
    values.pop("recipe", None)
    return config_type(**values)


def typed_options(config_type: type, options: dict[str, Any]) -> dict[str, Any]:
    """`options` checked against the dataclass's field types. A text value becomes the declared
    type ("1e-4" for a float: YAML reads it as text); any other value is kept as given, so an int
    stays an int where a field also takes floats (sklearn reads max_features=1 and 1.0 apart)."""
    hints = typing.get_type_hints(config_type)
    checked = {}
    for name, value in options.items():
        try:
            adapter = TypeAdapter(hints[name])
        except PydanticSchemaGenerationError:  # a type pydantic cannot check; the config checks it
            checked[name] = value
            continue
        try:
            converted = adapter.validate_python(value)
        except ValidationError as error:
            problem, expected = error.errors()[0]["msg"], type_name(hints[name])
            raise InputError(
                f"option {name}={value!r} for {config_type.__name__}: {problem} (expected {expected})"
            ) from None
        checked[name] = converted if isinstance(value, str) else value
    return checked


def type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def model_options(ctx: BackendContext) -> dict[str, Any]:
    """The run's `models.options.ModelOptions` fields, plus the recipe that suits the model."""
    return {
        "model_name": ctx.source.spec,
        "dtype": ctx.config.dtype,
        "device": ctx.config.device,
        "trust_remote_code": ctx.config.trust_remote_code,
        "recipe": ctx.source.recipe,
    }


def build_predictor(ctx: BackendContext) -> LLMPredictorInterface:
    """The predictor of backend `ctx.config.backend` (constructors are lazy: nothing loads yet)."""
    return load_builder(backend_spec(ctx.config.backend))(ctx)


def predictor_for(config: RunConfig, source: ModelSource) -> LLMPredictorInterface:
    """The predictor of `config.backend` alone (what each worker of a `ray_` pool builds)."""
    return build_predictor(BackendContext(config, source))


def build_trainer(ctx: BackendContext) -> LLMTrainerInterface:
    """The trainer `ctx.config.trainer`, for adapters that backend `ctx.config.backend` serves."""
    check_pairing(ctx.config.backend, ctx.config.trainer)
    return load_builder(trainer_spec(ctx.config.trainer))(ctx)


def build_trainable(config: RunConfig, source: ModelSource) -> TrainableLLMPredictor:
    ctx = BackendContext(config, source)
    return TrainableLLMPredictor(
        build_predictor(ctx),
        build_trainer(ctx),
        TrainableLLMPredictorConfig(save_adapters=config.save_adapters),
    )


def fit_to_backend(config: RunConfig) -> RunConfig:
    """The run as it will happen: no zero-shot baseline where the backend cannot score one.

    Such a run and the same run with `--no-zero-shot` are one run (same fingerprint, same result).
    """
    if config.zero_shot and not backend_spec(config.backend).zero_shot:
        logger.info(
            "zero-shot does not apply to the %s backend (it predicts only through a trained fold);"
            " the baseline is reported as not applicable",
            config.backend,
        )
        return dataclasses.replace(config, zero_shot=False)
    return config
