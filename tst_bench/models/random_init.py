"""A randomly initialised model with Qwen2-0.5B's shape, for GPU speed and memory measurements.

Its numbers say nothing about accuracy (the weights are random), but it exercises the same
memory, kernels and FLOPs as the real 0.5B model without needing its weights, which an offline
GPU machine cannot download. It reuses the tiny model's tokenizer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .cache import build_once
from .tiny import tiny_model_dir

MARKER_FILE = "tst_bench_model.json"


def random_qwen2_dir() -> Path:
    return build_once("random-qwen2-0.5b-v1", _build, marker=MARKER_FILE)


def _build(directory: Path) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer_dir = tiny_model_dir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, directory / name)
    tokenizer_config = json.loads((tokenizer_dir / "config.json").read_text())
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer_config["pad_token_id"],
        bos_token_id=tokenizer_config["bos_token_id"],
        eos_token_id=tokenizer_config["eos_token_id"],
        dtype="bfloat16",
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    finally:
        torch.random.set_rng_state(state)
    model.save_pretrained(directory)
    marker = {"name": "random-qwen2-0.5b", "recipe": "pretrained", "random_init": True}
    (directory / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
