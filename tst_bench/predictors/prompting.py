"""Prompt rendering and tokenisation shared by every predictor and trainer.

Training and scoring must see byte-identical prompts, and the answer label must be the very token
the model was trained to emit; keeping both in one place is what guarantees it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError
from ..schemas import TestInstance

logger = logging.getLogger(__name__)
#: How many cut prompts a warning names by id.
SHOWN_CUT = 5


@dataclass(frozen=True)
class PromptStyle:
    use_chat_template: bool = True
    system_prompt: str | None = None


def render_prompt(tokenizer, instruction: str, style: PromptStyle) -> str:
    """The text up to where the answer starts (chat template with generation prompt, if any)."""
    if not style.use_chat_template or not getattr(tokenizer, "chat_template", None):
        return instruction
    messages = [{"role": "user", "content": instruction}]
    if style.system_prompt:
        messages.insert(0, {"role": "system", "content": style.system_prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_ids(tokenizer, instruction: str, style: PromptStyle) -> list[int]:
    """The whole prompt's token ids, however long."""
    text = render_prompt(tokenizer, instruction, style)
    chat = style.use_chat_template and bool(getattr(tokenizer, "chat_template", None))
    return tokenizer(text, add_special_tokens=not chat)["input_ids"]


def encode_prompt(tokenizer, instruction: str, style: PromptStyle, max_length: int) -> list[int]:
    """Prompt token ids, cut from the left when longer than `max_length` (the answer end stays)."""
    ids = prompt_ids(tokenizer, instruction, style)
    if len(ids) > max_length:
        logger.debug("prompt of %d tokens cut to the last %d", len(ids), max_length)
        ids = ids[-max_length:]
    return ids


def encode_prompts(
    tokenizer, instances: Sequence[TestInstance], style: PromptStyle, max_length: int
) -> list[list[int]]:
    """`encode_prompt` for each instance; a warning names the prompts that had to be cut, since a
    cut question may have lost what its answer depends on."""
    encoded, cut = [], []
    for instance in instances:
        ids = prompt_ids(tokenizer, instance.instruction, style)
        if len(ids) > max_length:
            cut.append(f"{instance.instance_id} ({len(ids):,} tokens)")
            ids = ids[-max_length:]
        encoded.append(ids)
    if cut:
        shown = ", ".join(cut[:SHOWN_CUT])
        more = f" and {len(cut) - SHOWN_CUT} more" if len(cut) > SHOWN_CUT else ""
        logger.warning(
            "%d of %d prompts are longer than %d tokens and were cut from the left (their start is"
            " lost): %s%s; a larger max_seq_length (--predictor-option, --trainer-option) keeps them whole",
            len(cut),
            len(instances),
            max_length,
            shown,
            more,
        )
    return encoded


def encode_response(tokenizer, response: str) -> list[int]:
    """Answer token ids followed by end-of-sequence, as the model should emit them."""
    ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.eos_token_id]


def choice_token_ids(tokenizer, choices: Sequence[str]) -> list[int]:
    """The single token of each answer label; labels that split into several tokens are an error."""
    ids = []
    for choice in choices:
        encoded = tokenizer(choice, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise InputError(
                f"answer label {choice!r} is {len(encoded)} tokens for this tokenizer; option"
                " scoring needs single-token labels"
            )
        ids.append(encoded[0])
    return ids
