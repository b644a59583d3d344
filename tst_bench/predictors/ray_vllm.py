"""RayVLLMPredictor: the predictor pool over the vLLM backend, one engine per GPU (or GPU share).

A public name kept as a thin alias: each Ray worker builds a `VLLMPredictor` from `base_config`
(vLLM is imported inside the workers only); everything else is the pool's. When several workers
share a GPU (`workers_per_gpu` > 1), give each engine its share with
`base_config.gpu_memory_utilization`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from .pool import RayPredictorPool, RayPredictorPoolConfig
from .vllm import VLLMPredictor, VLLMPredictorConfig


@dataclass
class RayVLLMPredictorConfig(RayPredictorPoolConfig):
    """`base_config` configures every worker's engine; `num_workers` 0: one per GPU."""

    base_config: VLLMPredictorConfig = field(default_factory=VLLMPredictorConfig)


class RayVLLMPredictor(RayPredictorPool):
    """Data-parallel vLLM inference over the GPUs of a Ray cluster."""

    def __init__(self, config: RayVLLMPredictorConfig | None = None):
        config = config or RayVLLMPredictorConfig()
        super().__init__(functools.partial(VLLMPredictor, config.base_config), config)
