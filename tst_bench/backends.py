"""Backend registry: names on the command line -> predictor and trainer objects.

Adding an engine means one builder function and one entry in PREDICTORS or TRAINERS. Options
given as `--predictor-option KEY=VALUE` / `--trainer-option KEY=VALUE` override the fields of the
backend's config dataclass and are checked against them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import RunConfig
from .errors import InputError
from .models import ModelSource
from .models.resident import ResidentModel
from .predictors.base import LLMPredictorInterface
from .predictors.trainable import TrainableLLMPredictor, TrainableLLMPredictorConfig
from .trainers.base import LLMTrainerInterface


@dataclass
class BackendContext:
    """What builders need; in-process backends share one resident base model through it."""

    config: RunConfig
    source: ModelSource
    _resident: ResidentModel | None = field(default=None, repr=False)

    def resident(self) -> ResidentModel:
        if self._resident is None:
            self._resident = ResidentModel(
                self.source,
                device=self.config.device,
                dtype=self.config.dtype,
                trust_remote_code=self.config.trust_remote_code,
            )
        return self._resident


def configure(config_type: type, options: dict[str, Any], **defaults: Any):
    """Build a config dataclass from defaults plus user options, rejecting unknown option names."""
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for {config_type.__name__}; known: {sorted(known)}")
    values = {**defaults, **options}
    if hasattr(config_type, "for_recipe"):
        recipe = values.pop("recipe")
        return config_type.for_recipe(recipe, **values)
    values.pop("recipe", None)
    return config_type(**values)


def _common(ctx: BackendContext) -> dict[str, Any]:
    return {
        "model_name": ctx.source.spec,
        "dtype": ctx.config.dtype,
        "device": ctx.config.device,
        "trust_remote_code": ctx.config.trust_remote_code,
        "recipe": ctx.source.recipe,
    }


def _hf_predictor(ctx: BackendContext) -> LLMPredictorInterface:
    from .predictors.hf import HFPredictor, HFPredictorConfig

    config = configure(HFPredictorConfig, ctx.config.predictor_options, **_common(ctx))
    return HFPredictor(config, resident=ctx.resident())


def _vllm_predictor(ctx: BackendContext) -> LLMPredictorInterface:
    from .predictors.vllm import VLLMPredictor, VLLMPredictorConfig

    config = configure(VLLMPredictorConfig, ctx.config.predictor_options, **_common(ctx))
    return VLLMPredictor(config, source=ctx.source)


def _peft_trainer(ctx: BackendContext) -> LLMTrainerInterface:
    from .trainers.peft import PeftTrainer, PeftTrainerConfig
    from .trainers.recipes import servable_lora, serves_through_vllm

    servable = servable_lora(ctx.source.recipe) if serves_through_vllm(ctx.config.backend) else {}
    config = configure(PeftTrainerConfig, ctx.config.trainer_options, **_common(ctx), **servable)
    return PeftTrainer(config, resident=ctx.resident())


def _llamafactory_trainer(ctx: BackendContext) -> LLMTrainerInterface:
    from .trainers.llamafactory import LlamaFactoryConfig, LlamaFactoryTrainer

    config = configure(LlamaFactoryConfig, ctx.config.trainer_options, **_common(ctx))
    return LlamaFactoryTrainer(config, source=ctx.source)


def _ray_pool(inner: str) -> Callable[[BackendContext], LLMPredictorInterface]:
    """`ray_<inner>`: backend `inner` on a pool of Ray workers (predictors/pool.py).

    Pool options (num_workers, transport, ...) come from --predictor-option like the inner
    backend's own; the worker count defaults to --workers, the cluster to --ray-address/--gpus.
    """

    def build(ctx: BackendContext) -> LLMPredictorInterface:
        from .cluster.connection import require_ray
        from .predictors.pool import (
            RayPredictorPool,
            RayPredictorPoolConfig,
            RegisteredPredictor,
            split_pool_options,
        )

        require_ray(f"backend ray_{inner}")
        if inner not in PREDICTORS:
            raise InputError(f"backend ray_{inner} needs the {inner!r} backend, which is not available")
        pool_options, inner_options = split_pool_options(ctx.config.predictor_options)
        inner_config = dataclasses.replace(ctx.config, backend=inner, predictor_options=inner_options)
        PREDICTORS[inner](BackendContext(inner_config, ctx.source))  # lazy: checks the inner options
        config = configure(
            RayPredictorPoolConfig,
            pool_options,
            num_workers=ctx.config.workers,
            workers_per_gpu=ctx.config.workers_per_gpu,
            ray_address=ctx.config.ray_address,
            num_gpus=ctx.config.ray_gpus,
            use_gpus=ctx.config.device != "cpu",
        )
        return RayPredictorPool(RegisteredPredictor(build_predictor, inner_config, ctx.source), config)

    return build


def _rf_predictor(ctx: BackendContext) -> LLMPredictorInterface:
    """TsT-RF: a Random-Forest diagnostic in the same fold loop (see tst_bench/rf)."""
    from .rf.backend import rf_predictor

    return rf_predictor(ctx)


def _rf_trainer(ctx: BackendContext) -> LLMTrainerInterface:
    from .rf.backend import rf_trainer

    return rf_trainer(ctx)


PREDICTORS: dict[str, Callable[[BackendContext], LLMPredictorInterface]] = {
    "hf": _hf_predictor,
    "vllm": _vllm_predictor,
    "ray_hf": _ray_pool("hf"),
    "ray_vllm": _ray_pool("vllm"),
    "rf": _rf_predictor,
}
TRAINERS: dict[str, Callable[[BackendContext], LLMTrainerInterface]] = {
    "peft": _peft_trainer,
    "llamafactory": _llamafactory_trainer,
    "rf": _rf_trainer,
}


def check_backend_names(config: RunConfig) -> None:
    if config.backend not in PREDICTORS:
        raise InputError(f"unknown backend {config.backend!r}; choose one of {sorted(PREDICTORS)}")
    if config.trainer not in TRAINERS:
        raise InputError(f"unknown trainer {config.trainer!r}; choose one of {sorted(TRAINERS)}")


def build_predictor(config: RunConfig, source: ModelSource) -> LLMPredictorInterface:
    """The predictor of `config.backend` alone (what each worker of a `ray_` pool builds)."""
    return PREDICTORS[config.backend](BackendContext(config, source))


def build_trainable(config: RunConfig, source: ModelSource) -> TrainableLLMPredictor:
    check_backend_names(config)
    ctx = BackendContext(config, source)
    predictor = PREDICTORS[config.backend](ctx)
    trainer = TRAINERS[config.trainer](ctx)
    return TrainableLLMPredictor(
        predictor, trainer, TrainableLLMPredictorConfig(save_adapters=config.save_adapters)
    )
