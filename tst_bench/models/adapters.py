"""Attach and detach PEFT adapters on a resident base model without ever changing the base.

`PeftModel.unload()` keeps the *trained* copies of `modules_to_save` layers (e.g. lm_head) in the
returned model, which would leak one fold's training into the next. `detach_adapter` puts the
original modules back first, so the base is bit-for-bit what it was before the fold.
"""

from __future__ import annotations

from pathlib import Path


def attach_adapter(base_model, path: Path, adapter_name: str = "tst"):
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, str(path), adapter_name=adapter_name, is_trainable=False)


def detach_adapter(peft_model):
    """Return the base model with every adapter layer removed and original modules restored."""
    from peft.utils.other import ModulesToSaveWrapper

    inner = peft_model.base_model.model
    for name, module in list(inner.named_modules()):
        if isinstance(module, ModulesToSaveWrapper):
            parent_name, _, child_name = name.rpartition(".")
            parent = inner.get_submodule(parent_name) if parent_name else inner
            setattr(parent, child_name, module.original_module)
    return peft_model.unload()


def adapter_size_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())


def drop_base_layer_weights(path: Path) -> int:
    """Remove frozen base-model copies from a saved adapter; returns the bytes saved.

    peft saves the full embedding and output matrices next to the LoRA weights whenever those
    layers carry LoRA (`save_embedding_layers="auto"`). They equal the base model's, which every
    loader (peft, vLLM) takes from the base anyway, and for a real vocabulary they are hundreds of
    megabytes per fold. Only safetensors files are rewritten (pickled `.bin` files are never read).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    weights = Path(path) / "adapter_model.safetensors"
    if not weights.exists():
        return 0
    with safe_open(str(weights), framework="pt") as handle:
        names = list(handle.keys())
        if not any(".base_layer." in name for name in names):
            return 0
        kept = {name: handle.get_tensor(name) for name in names if ".base_layer." not in name}
        metadata = handle.metadata()
    before = weights.stat().st_size
    staging = weights.with_name(f".{weights.name}.tmp")
    save_file(kept, str(staging), metadata=metadata)
    staging.replace(weights)
    return before - weights.stat().st_size


def cast_adapter_weights(path: Path, dtype) -> int:
    """Store a saved adapter's floating-point tensors in `dtype` (e.g. the base model's bf16);
    returns the bytes saved. peft and vLLM cast adapter weights to what they compute in on load,
    so a bf16 base loses nothing by a bf16 adapter, and the file halves."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    weights = Path(path) / "adapter_model.safetensors"
    if not weights.exists():
        return 0
    with safe_open(str(weights), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (no __iter__)
        metadata = handle.metadata()
    cast = {
        name: tensor.to(dtype) if tensor.is_floating_point() and tensor.dtype != dtype else tensor
        for name, tensor in tensors.items()
    }
    if all(cast[name] is tensors[name] for name in tensors):
        return 0
    before = weights.stat().st_size
    staging = weights.with_name(f".{weights.name}.tmp")
    save_file(cast, str(staging), metadata=metadata)
    staging.replace(weights)
    return before - weights.stat().st_size
