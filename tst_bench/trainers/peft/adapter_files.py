"""The adapters as peft sees them: which modules they change, their initial values, their files.

The batched hooks (lora_hooks.py) train values that peft itself lays out: each fold starts from the
adapter `get_peft_model` initialises under its seed, and is saved by copying its values into a
fresh peft model and calling `save_pretrained`, so HF peft and vLLM load it like any other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ...errors import InputError
from ...models.adapters import cast_adapter_weights, detach_adapter
from ..settings import TrainingSettings

ADAPTER = "default"  # the adapter name get_peft_model gives
ModuleKind = Literal["lora", "lora_embedding", "copy"]


@dataclass(frozen=True)
class AdaptedModule:
    """A base-model module that the adapters change: LoRA on a Linear or an Embedding, or a full
    trainable copy (`copy`, peft's modules_to_save)."""

    name: str
    kind: ModuleKind
    tensors: tuple[str, ...]
    scaling: float = 1.0
    dropout: float = 0.0


@dataclass(frozen=True)
class AdapterLayout:
    """Which modules carry trainable values and the per-fold shape of each tensor."""

    modules: tuple[AdaptedModule, ...]
    shapes: dict[str, tuple[int, ...]]

    @property
    def tensor_names(self) -> list[str]:
        return list(self.shapes)


def tensor_key(module: str, tensor: str) -> str:
    return f"{module}:{tensor}"


def lora_config(settings: TrainingSettings):
    """The peft LoraConfig of an adapter trained with `settings`."""
    from peft import LoraConfig

    target = settings.target_modules
    return LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=target if isinstance(target, str) else list(target),
        modules_to_save=None if settings.modules_to_save is None else list(settings.modules_to_save),
        task_type="CAUSAL_LM",
    )


@contextlib.contextmanager
def peft_wrapped(base_model, config) -> Iterator[Any]:
    """The base model inside a fresh peft model for the duration of the block, then restored."""
    from peft import get_peft_model

    peft_model = get_peft_model(base_model, config)
    try:
        yield peft_model
    finally:
        detach_adapter(peft_model)


def initial_adapter(base_model, config, seed: int) -> tuple[AdapterLayout, dict[str, Any]]:
    """The layout and the initial values peft gives an adapter under `seed`."""
    import torch

    torch.manual_seed(seed)
    with peft_wrapped(base_model, config) as peft_model:
        modules, tensors = [], {}
        for name, module in peft_model.base_model.model.named_modules():
            described = _describe(name, module)
            if described is None:
                continue
            adapted, values = described
            modules.append(adapted)
            for key, value in values.items():
                tensors[tensor_key(name, key)] = value.detach().float().clone()
    if not modules:
        raise InputError(
            f"the LoRA settings adapt no module of this model (target_modules={config.target_modules})"
        )
    layout = AdapterLayout(tuple(modules), {name: tuple(value.shape) for name, value in tensors.items()})
    return layout, tensors


def save_adapter(base_model, config, tensors: dict[str, Any], output_dir: Path, save_dtype=None) -> None:
    """One fold's values written as a standard peft adapter (adapter_config.json + safetensors);
    `save_dtype` (e.g. bf16) casts the saved floating-point tensors."""
    import torch

    with peft_wrapped(base_model, config) as peft_model, torch.no_grad():
        for name, module in peft_model.base_model.model.named_modules():
            described = _describe(name, module)
            if described is None:
                continue
            for key, parameter in described[1].items():
                parameter.copy_(tensors[tensor_key(name, key)].reshape(parameter.shape))
        output_dir.mkdir(parents=True, exist_ok=True)
        peft_model.save_pretrained(str(output_dir))
    if save_dtype is not None:
        cast_adapter_weights(output_dir, save_dtype)


def _describe(name: str, module) -> tuple[AdaptedModule, dict[str, Any]] | None:
    """What a peft-wrapped module trains, as (spec, {tensor name: peft parameter})."""
    import torch
    from peft.tuners.lora import layer as lora_layers
    from peft.utils.other import ModulesToSaveWrapper

    if isinstance(module, ModulesToSaveWrapper):
        copy = module.modules_to_save[ADAPTER]
        if not isinstance(copy, torch.nn.Linear | torch.nn.Embedding):
            raise InputError(
                f"modules_to_save {name!r} is a {type(copy).__name__}; only Linear and Embedding layers train"
            )
        values: dict[str, Any] = {"weight": copy.weight}
        bias = getattr(copy, "bias", None)  # an Embedding has none
        if isinstance(bias, torch.Tensor):
            values["bias"] = bias
        return AdaptedModule(name, "copy", tuple(values)), values
    if not isinstance(module, lora_layers.LoraLayer):
        return None
    if ADAPTER in getattr(module, "lora_variant", {}) or getattr(module, "fan_in_fan_out", False):
        raise InputError(f"LoRA variant on {name!r} (DoRA, fan_in_fan_out, ...) is not supported here")
    dropout = module.lora_dropout[ADAPTER]
    rate = float(dropout.p) if isinstance(dropout, torch.nn.Dropout) else 0.0
    scaling = float(module.scaling[ADAPTER])
    if isinstance(module, lora_layers.Embedding):
        values = {
            "lora_embedding_A": module.lora_embedding_A[ADAPTER],
            "lora_embedding_B": module.lora_embedding_B[ADAPTER],
        }
        return AdaptedModule(name, "lora_embedding", tuple(values), scaling, rate), values
    if isinstance(module, lora_layers.Linear):
        if module.lora_B[ADAPTER].bias is not None:
            raise InputError(f"lora_bias on {name!r} is not supported by this trainer")
        values = {"lora_A": module.lora_A[ADAPTER].weight, "lora_B": module.lora_B[ADAPTER].weight}
        return AdaptedModule(name, "lora", tuple(values), scaling, rate), values
    raise InputError(
        f"LoRA on {name!r} ({type(module).__name__}) is not supported: only Linear and Embedding"
    )
