"""Randomly initialised models in real models' shapes, for GPU speed and memory measurements.

Their numbers say nothing about accuracy (the weights are random), but they exercise the same
memory, kernels and FLOPs as the real models without needing their weights, which an offline GPU
machine cannot download. They reuse the tiny model's tokenizer. Large shapes are built on the GPU
when there is one (random init of billions of parameters on a CPU takes minutes).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .cache import build_once, write_marker
from .tiny import tiny_model_dir


@dataclass(frozen=True)
class RandomShape:
    """A Qwen2-family architecture; `cache_name` changes whenever the built weights would."""

    cache_name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    tie_word_embeddings: bool
    rope_theta: float = 1e6
    #: Initialise in bf16, on the GPU if one is visible (the 0.5B shape keeps its CPU fp32-built weights).
    build_on_gpu: bool = False


RANDOM_SHAPES = {
    "random-qwen2-0.5b": RandomShape(
        cache_name="random-qwen2-0.5b-v1",
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    ),
    "random-qwen2.5-7b": RandomShape(
        cache_name="random-qwen2.5-7b-v1",
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        tie_word_embeddings=False,
        build_on_gpu=True,
    ),
}


def random_model_dir(name: str) -> Path:
    shape = RANDOM_SHAPES[name]
    return build_once(shape.cache_name, lambda directory: _build(directory, name, shape))


def _build(directory: Path, name: str, shape: RandomShape) -> None:
    import torch

    tokenizer_dir = tiny_model_dir()
    for file_name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tokenizer_dir / file_name).exists():
            shutil.copy(tokenizer_dir / file_name, directory / file_name)
    on_gpu = shape.build_on_gpu and torch.cuda.is_available()
    model = random_model(name, device="cuda" if on_gpu else "cpu")
    model.save_pretrained(directory)
    del model
    write_marker(directory, name=name, recipe="pretrained", random_init=True)


def random_model(name: str, device: str = "cpu"):
    """The model `name` in memory on `device`, bf16, seed 0 (what its cached folder holds when
    built on the same device); benchmarks use it to skip writing and reading the weights."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = RANDOM_SHAPES[name]
    tokenizer_config = json.loads((tiny_model_dir() / "config.json").read_text())
    config = Qwen2Config(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=shape.tie_word_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": shape.rope_theta},
        pad_token_id=tokenizer_config["pad_token_id"],
        bos_token_id=tokenizer_config["bos_token_id"],
        eos_token_id=tokenizer_config["eos_token_id"],
        dtype="bfloat16",
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    try:
        if shape.build_on_gpu:  # initialised in bf16: an fp32 copy of 7B parameters is 30 GB
            torch.set_default_dtype(torch.bfloat16)
        with torch.device(device):
            return Qwen2ForCausalLM(config).bfloat16()
    finally:
        torch.set_default_dtype(default_dtype)
        torch.random.set_rng_state(state)
