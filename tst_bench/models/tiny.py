"""The embedded `tiny` model: a byte-level BPE tokenizer and a 2-layer Llama, built offline.

Both are deterministic functions of this module, so every machine (and every Ray worker) that
builds them gets byte-identical files. The tokenizer can encode any text (byte fallback), keeps
option letters as single tokens, and its chat template is LlamaFactory's `default` template, so
prompts rendered by the tokenizer match what `llamafactory-cli train --template default` trains
on. `head_dim=32` keeps vLLM's CPU attention happy.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..datasets.prompts import blind_instruction
from ..datasets.synthetic import SYNTHETIC_KINDS, SyntheticSpec, generate
from .cache import build_once, write_marker

TINY_VERSION = 1
VOCAB_SIZE = 2048
SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}System: {{ message['content'] }}{{ eos_token }}\n"
    "{% elif message['role'] == 'user' %}Human: {{ message['content'] }}{{ eos_token }}\nAssistant:"
    "{% else %}{{ message['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}"
)


def tiny_model_dir() -> Path:
    return build_once(f"tiny-v{TINY_VERSION}", build_tiny_model)


def build_tiny_model(directory: Path) -> None:
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(directory)
    _fix_tokenizer_class(directory)
    model = _build_model(tokenizer)
    model.save_pretrained(directory)
    write_marker(directory, name="tiny", recipe="tiny", version=TINY_VERSION)


def training_corpus() -> list[str]:
    """Text the BPE merges are learned from: the synthetic benchmark's prompts and answers."""
    lines = ["Human: ", "Assistant:", "System: ", *[str(n) for n in range(101)]]
    for kind in SYNTHETIC_KINDS:
        for record in generate(SyntheticSpec(kind=kind, rows=2000, seed=12345)):
            lines.append(blind_instruction(record))
            lines.append(record.answer)
    return lines


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    pad, bos, eos = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=pad,
        bos_token=bos,
        eos_token=eos,
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )


def _fix_tokenizer_class(directory: Path) -> None:
    """Name the class every transformers release (and LlamaFactory's older one) can load."""
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def _build_model(tokenizer):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="float32",
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    return model
