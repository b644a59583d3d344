"""Sizing the vLLM engine from what scoring needs (no engine started)."""

import json
import math
import struct

import pytest

from tst_bench.errors import InputError
from tst_bench.models.random_init import RANDOM_SHAPES
from tst_bench.predictors.vllm_sizing import (
    GIB,
    KV_BLOCK_TOKENS,
    MAX_GPU_MEMORY_UTILIZATION,
    EngineMemoryPlan,
    kv_cache_bytes_per_token,
    parameter_count,
    plan_engine_memory,
)

H200_BYTES = 143771 * 2**20


def shape_config(name: str) -> dict:
    shape = RANDOM_SHAPES[name]
    return {
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.num_key_value_heads,
        "hidden_size": shape.hidden_size,
    }


def write_checkpoint(directory, config, tensors):
    """A config.json and a safetensors file whose header lists `tensors` (name -> shape)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    header: dict[str, dict[str, object]] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors.items():
        size = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    (directory / "model.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(offset))
    return directory


def test_kv_cache_per_token_of_the_qwen_shapes():
    # 2 (key, value) x layers x kv heads x head_dim x 2 bytes (bf16)
    assert kv_cache_bytes_per_token(shape_config("random-qwen2-0.5b"), 2) == 2 * 24 * 2 * 64 * 2
    assert kv_cache_bytes_per_token(shape_config("random-qwen2.5-7b"), 2) == 2 * 28 * 4 * 128 * 2
    # tensor parallelism splits the kv heads; an explicit head_dim wins over hidden / heads
    assert kv_cache_bytes_per_token(shape_config("random-qwen2.5-7b"), 2, tensor_parallel_size=2) == (
        2 * 28 * 2 * 128 * 2
    )
    assert (
        kv_cache_bytes_per_token({**shape_config("random-qwen2-0.5b"), "head_dim": 32}, 4)
        == 2 * 24 * 2 * 32 * 4
    )


def test_latent_attention_caches_one_compressed_vector_per_layer():
    config = {"num_hidden_layers": 3, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "num_attention_heads": 16}
    assert kv_cache_bytes_per_token(config, 2) == 3 * (512 + 64) * 2


def test_a_config_without_the_attention_shape_says_how_to_size_by_hand():
    with pytest.raises(InputError, match="kv_cache_memory_bytes"):
        kv_cache_bytes_per_token({"num_hidden_layers": 2}, 2)


def test_the_plan_holds_every_prompt_of_a_full_batch(tmp_path):
    model = write_checkpoint(
        tmp_path / "m", shape_config("random-qwen2-0.5b"), {"embed.weight": [1000, 896], "norm.weight": [896]}
    )
    assert parameter_count(model) == 1000 * 896 + 896
    plan = plan_engine_memory(model, "bfloat16", max_num_seqs=128, max_model_len=1000)
    tokens = -(-128 * 1000 // KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS  # whole blocks
    assert plan.kv_cache_bytes == tokens * 2 * 24 * 2 * 64 * 2
    assert plan.weights_bytes == (1000 * 896 + 896) * 2
    assert plan.total_bytes == plan.weights_bytes + plan.kv_cache_bytes + plan.overhead_bytes
    assert plan.released_by_sleep_bytes == plan.weights_bytes + plan.kv_cache_bytes
    float32 = plan_engine_memory(model, "float32", max_num_seqs=128, max_model_len=1000)
    assert (
        float32.kv_cache_bytes == 2 * plan.kv_cache_bytes and float32.weights_bytes == 2 * plan.weights_bytes
    )


def test_the_tiny_models_checkpoint_is_counted_from_its_header(tiny_source):
    from safetensors import safe_open

    with safe_open(str(tiny_source.path / "model.safetensors"), framework="pt") as weights:
        expected = sum(weights.get_tensor(name).numel() for name in weights.keys())  # noqa: SIM118
    assert parameter_count(tiny_source.path) == expected


def test_engine_shares_of_an_h200_leave_room_for_the_trainer():
    """The 7B shape in bf16 (7.6e9 parameters), 128 prompts of 1024 tokens: about a fifth of an H200."""
    seven_b = EngineMemoryPlan(weights_bytes=int(7.6e9) * 2, kv_cache_bytes=128 * 1024 * 2 * 28 * 4 * 128 * 2)
    assert 25 * GIB < seven_b.total_bytes < 32 * GIB
    assert 0.15 < seven_b.gpu_memory_utilization(H200_BYTES) < 0.25
    half_b = EngineMemoryPlan(weights_bytes=int(0.494e9) * 2, kv_cache_bytes=128 * 1024 * 2 * 24 * 2 * 64 * 2)
    assert half_b.gpu_memory_utilization(H200_BYTES) < 0.05
    huge = EngineMemoryPlan(weights_bytes=200 * GIB, kv_cache_bytes=GIB)
    assert huge.gpu_memory_utilization(H200_BYTES) == MAX_GPU_MEMORY_UTILIZATION


def test_missing_checkpoint_or_config_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"config\.json"):
        plan_engine_memory(tmp_path, "bfloat16", 1, 16)
    (tmp_path / "config.json").write_text(json.dumps(shape_config("random-qwen2-0.5b")))
    with pytest.raises(InputError, match="safetensors"):
        plan_engine_memory(tmp_path, "bfloat16", 1, 16)
