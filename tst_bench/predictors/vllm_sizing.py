"""How much device memory a vLLM engine for TsT scoring needs, worked out before it is built.

vLLM's own default gives the engine 90% of the GPU (`gpu_memory_utilization=0.9`) and fills what
the weights leave with KV cache. Beside an in-process trainer, or a second model kept resident
for it, that cannot fit: the trainer's model and the engine would both want most of the GPU. TsT
scoring needs far less: at most `max_num_seqs` prompts of at most `max_model_len` tokens at a
time. So the KV cache is sized for exactly that (vLLM's `kv_cache_memory_bytes`), and
`gpu_memory_utilization` becomes the engine's estimated share (weights + KV cache + activations
and CUDA graphs), which vLLM only uses to check, at start-up, that this much memory is free.
On the 0.5B shape that is ~6.5 GiB, on the 7B shape ~27 GiB of an H200's 140.

An explicit `gpu_memory_utilization` or `kv_cache_memory_bytes` from the user wins. Both values
stay the same for every rebuild of a predictor's engine: `kv_cache_memory_bytes` is part of vLLM's
compile-cache key, so a rebuilt engine reuses the compiled graphs of the first.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

GIB = 2**30
#: vLLM allocates the KV cache in blocks of this many tokens (its CUDA default).
KV_BLOCK_TOKENS = 16
#: Activations of vLLM's profiling pass, the sampler's logits, CUDA graphs and the CUDA context,
#: on top of weights and KV cache: a generous allowance (vLLM logs ~1-3 GiB for these shapes).
ENGINE_OVERHEAD_BYTES = 4 * GIB
#: ... plus this share of the weights (LoRA slots, workspace buffers scale with the model).
ENGINE_OVERHEAD_SHARE = 0.1
#: vLLM's own default, and the most an estimate may claim.
MAX_GPU_MEMORY_UTILIZATION = 0.9
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class EngineMemoryPlan:
    """The engine's memory on each GPU it runs on, in bytes."""

    weights_bytes: int
    kv_cache_bytes: int

    @property
    def overhead_bytes(self) -> int:
        return ENGINE_OVERHEAD_BYTES + int(ENGINE_OVERHEAD_SHARE * self.weights_bytes)

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes

    @property
    def released_by_sleep_bytes(self) -> int:
        """What sleep level 1 hands back at least: the weights (to host memory) and the KV cache."""
        return self.weights_bytes + self.kv_cache_bytes

    def gpu_memory_utilization(self, device_total_bytes: int) -> float:
        share = self.total_bytes / device_total_bytes
        return round(min(MAX_GPU_MEMORY_UTILIZATION, max(0.01, share)), 4)

    def describe(self) -> str:
        return (
            f"weights {self.weights_bytes / GIB:.1f} GiB + KV cache {self.kv_cache_bytes / GIB:.2f} GiB"
            f" + overhead {self.overhead_bytes / GIB:.1f} GiB"
        )


def plan_engine_memory(
    model_dir: Path, dtype: str, max_num_seqs: int, max_model_len: int, tensor_parallel_size: int = 1
) -> EngineMemoryPlan:
    """The plan for serving `max_num_seqs` prompts of `max_model_len` tokens at once."""
    config = read_model_config(model_dir)
    dtype_bytes = DTYPE_BYTES[dtype]
    tokens = math.ceil(max_num_seqs * max_model_len / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS
    kv = tokens * kv_cache_bytes_per_token(config, dtype_bytes, tensor_parallel_size)
    weights = parameter_count(model_dir) * dtype_bytes // tensor_parallel_size
    return EngineMemoryPlan(weights_bytes=weights, kv_cache_bytes=kv)


def read_model_config(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the model's config.json ({path}): {error}") from None
    return config.get("text_config") or config


def kv_cache_bytes_per_token(config: dict[str, Any], dtype_bytes: int, tensor_parallel_size: int = 1) -> int:
    """Key and value vectors of every layer for one token, on one tensor-parallel rank.

    Multi-head latent attention (DeepSeek) caches one compressed vector per layer instead.
    """
    try:
        layers = int(config["num_hidden_layers"])
        if config.get("kv_lora_rank"):
            latent = int(config["kv_lora_rank"]) + int(config.get("qk_rope_head_dim", 0))
            return layers * latent * dtype_bytes
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(
            f"the model's config.json lacks {error} needed to size the KV cache;"
            " pass --predictor-option kv_cache_memory_bytes=N or gpu_memory_utilization=F"
        ) from None
    kv_heads_per_rank = max(1, math.ceil(kv_heads / tensor_parallel_size))
    return 2 * layers * kv_heads_per_rank * head_dim * dtype_bytes


def parameter_count(model_dir: Path) -> int:
    """Parameters in the checkpoint, from the safetensors headers (no tensor is read)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise InputError(
            f"no *.safetensors in {model_dir} to size the vLLM engine from;"
            " pass --predictor-option gpu_memory_utilization=F"
        )
    return sum(_safetensors_parameters(path) for path in files)


def _safetensors_parameters(path: Path) -> int:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
