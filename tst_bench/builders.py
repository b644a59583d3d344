"""The builders of the registered backends and trainers (named in tst_bench/registry.py).

Each takes a `backends.BackendContext` and returns a predictor or trainer whose constructor is
lazy: building one checks the names and options, nothing is loaded until it is used. The engines'
modules are imported inside the builders, so asking for one engine never imports another.
"""

from __future__ import annotations

import dataclasses

from .backends import BackendContext, build_predictor, configure, model_options, predictor_for
from .predictors.base import LLMPredictorInterface
from .registry import backend_spec
from .trainers.base import LLMTrainerInterface


def hf_predictor(ctx: BackendContext) -> LLMPredictorInterface:
    from .predictors.hf import HFPredictor, HFPredictorConfig

    config = configure(HFPredictorConfig, ctx.config.predictor_options, **model_options(ctx))
    return HFPredictor(config, resident=ctx.resident())


def vllm_predictor(ctx: BackendContext) -> LLMPredictorInterface:
    from .predictors.vllm import VLLMPredictor, VLLMPredictorConfig

    config = configure(VLLMPredictorConfig, ctx.config.predictor_options, **model_options(ctx))
    return VLLMPredictor(config, source=ctx.source)


def ray_pool_predictor(ctx: BackendContext) -> LLMPredictorInterface:
    """`ray_<inner>`: backend `inner` on a pool of Ray workers (predictors/pool.py).

    Pool options (num_workers, transport, ...) come from --predictor-option like the inner
    backend's own; the worker count defaults to --workers, the cluster to --ray-address/--gpus.
    """
    from .cluster.connection import require_ray
    from .predictors.pool import (
        RayPredictorPool,
        RayPredictorPoolConfig,
        RegisteredPredictor,
        split_pool_options,
    )

    backend = ctx.config.backend
    inner = backend_spec(backend).pool_of
    assert inner is not None, f"{backend} is registered with this builder but names no inner backend"
    require_ray(f"backend {backend}")
    pool_options, inner_options = split_pool_options(ctx.config.predictor_options)
    inner_config = dataclasses.replace(ctx.config, backend=inner, predictor_options=inner_options)
    build_predictor(BackendContext(inner_config, ctx.source))  # lazy: checks the inner options here
    config = configure(
        RayPredictorPoolConfig,
        pool_options,
        num_workers=ctx.config.workers,
        workers_per_gpu=ctx.config.workers_per_gpu,
        ray_address=ctx.config.ray_address,
        num_gpus=ctx.config.ray_gpus,
        use_gpus=ctx.config.device != "cpu",
    )
    return RayPredictorPool(RegisteredPredictor(predictor_for, inner_config, ctx.source), config)


def rf_predictor(ctx: BackendContext) -> LLMPredictorInterface:
    """TsT-RF: a Random-Forest diagnostic in the same fold loop (see tst_bench/rf)."""
    from .rf.backend import RFPredictor, RFPredictorConfig

    return RFPredictor(configure(RFPredictorConfig, ctx.config.predictor_options))


def peft_trainer(ctx: BackendContext) -> LLMTrainerInterface:
    from .trainers.peft import PeftTrainer, PeftTrainerConfig

    servable = backend_spec(ctx.config.backend).vllm_adapters
    config = configure(PeftTrainerConfig, ctx.config.trainer_options, **model_options(ctx), servable=servable)
    return PeftTrainer(config, resident=ctx.resident())


def llamafactory_trainer(ctx: BackendContext) -> LLMTrainerInterface:
    from .trainers.llamafactory import LlamaFactoryConfig, LlamaFactoryTrainer

    config = configure(LlamaFactoryConfig, ctx.config.trainer_options, **model_options(ctx))
    return LlamaFactoryTrainer(config, source=ctx.source)


def rf_trainer(ctx: BackendContext) -> LLMTrainerInterface:
    from .rf.backend import RFConfig, RFTrainer

    return RFTrainer(configure(RFConfig, ctx.config.trainer_options))
