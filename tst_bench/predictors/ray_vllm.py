"""RayVLLMPredictor: the predictor pool with one vLLM engine per GPU (the original design's name).

Each Ray worker builds its own `VLLMPredictor` from `base_config`; vLLM is imported inside the
workers only. Everything else (splitting, input order, adapters on every worker, naming a failing
worker, `reset()` killing the workers) is the generic pool's. When several workers share a GPU
(`workers_per_gpu` > 1), give each engine its share with `base_config.gpu_memory_utilization`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .pool import ConfiguredPredictor, RayPredictorPool, RayPredictorPoolConfig

VLLM_MODULE = "tst_bench.predictors.vllm"


@dataclass
class RayVLLMPredictorConfig(RayPredictorPoolConfig):
    """`base_config` is a VLLMPredictorConfig (None: its defaults); `num_workers` 0: one per GPU."""

    base_config: Any = None

    def set_with_gpu_count(self, gpu_count: int) -> RayVLLMPredictorConfig:
        return dataclasses.replace(self, num_workers=gpu_count)


class RayVLLMPredictor(RayPredictorPool):
    """Data-parallel vLLM inference over the GPUs of a Ray cluster."""

    def __init__(self, config: RayVLLMPredictorConfig | None = None):
        config = config or RayVLLMPredictorConfig()
        base_config = config.base_config if config.base_config is not None else default_vllm_config()
        super().__init__(ConfiguredPredictor(VLLM_MODULE, "VLLMPredictor", base_config), config)


def default_vllm_config() -> Any:
    try:
        from .vllm import VLLMPredictorConfig  # type: ignore[import-not-found]
    except ImportError as error:
        raise InputError(f"the vLLM predictor is not available: {error}") from None
    return VLLMPredictorConfig()
