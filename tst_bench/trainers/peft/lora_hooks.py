"""LoRA adapters of several folds trained side by side on one copy of the base model.

peft keeps one adapter active per training forward (its `adapter_names` routing is for inference
only), so k folds would need k passes or k model copies. Here every adapted module gets forward
hooks that add *each row's own fold's* LoRA term: the folds' A matrices are stacked into one
[k*r, in] matrix, the down-projection of every token is masked to its fold's r columns, and one
up-projection adds the result (two matmuls per module for all folds; with k = 1 it is plain LoRA).
Layers that peft trains in full (`modules_to_save`) get one copy per fold.

All folds' trainable values live in one [k, P] fp32 leaf tensor (row j = fold j) with one dense
gradient, so the optimizer, the gradient clipping and the loss bookkeeping are per-row tensor
operations instead of per-parameter loops. Each forward pass casts the whole buffer to the compute
dtype once and splits it into per-module views (whose backward is one concatenation). Which
modules are adapted, and how, comes from peft (adapter_files.py).
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any

from ...errors import InputError

if TYPE_CHECKING:
    import torch
from .adapter_files import AdaptedModule, AdapterLayout, tensor_key


class FoldWeights:
    """The trainable values of k folds: `values` [k, P] (fp32, the autograd leaf), its gradient
    `grads` (accumulated in place across micro-batches), and `current`: per-tensor [k, *shape]
    views in the compute dtype for the forward pass under way (see `materialize`)."""

    def __init__(self, layout: AdapterLayout, folds: int, device):
        import torch

        self.layout = layout
        self.folds = folds
        self.sizes = [prod(shape) for shape in layout.shapes.values()]
        self.offsets: dict[str, tuple[int, int]] = {}
        total = 0
        for name, size in zip(layout.shapes, self.sizes, strict=True):
            self.offsets[name] = (total, total + size)
            total += size
        self.values = torch.zeros(folds, total, dtype=torch.float32, device=device, requires_grad=True)
        self.values.grad = torch.zeros_like(self.values)
        self.current: dict[str, Any] = {}

    @property
    def grads(self) -> torch.Tensor:
        grads = self.values.grad
        if grads is None:
            raise RuntimeError("the folds' gradient buffer was dropped")
        return grads

    def materialize(self, dtype) -> None:
        """Cast every fold's values to `dtype` in one op and view them per tensor."""
        pieces = self.values.to(dtype).split(self.sizes, dim=1)
        self.current = {
            name: piece.view(self.folds, *shape)
            for (name, shape), piece in zip(self.layout.shapes.items(), pieces, strict=True)
        }

    def load(self, fold: int, tensors: dict[str, Any]) -> None:
        import torch

        with torch.no_grad():
            for name, tensor in tensors.items():
                start, end = self.offsets[name]
                self.values[fold, start:end].copy_(tensor.reshape(-1))

    def fold_tensors(self, fold: int) -> dict[str, Any]:
        values = self.values.detach()
        return {
            name: values[fold, start:end].view(self.layout.shapes[name])
            for name, (start, end) in self.offsets.items()
        }


@dataclass
class Routing:
    """Which fold each row of the next adapted-module input belongs to.

    `folds` [M] indexes the fold of each of the M rows (tokens, or labelled positions for the output
    layer); `one_hot` [M, k] is its mask in the compute dtype (None when k = 1); `fold_sizes` is set
    when the rows are grouped fold by fold, which lets full-copy layers use contiguous slices.
    """

    folds: Any = None
    one_hot: Any = None
    fold_sizes: list[int] | None = None
    count: int = 1

    def set(self, folds, dtype, fold_sizes: list[int] | None = None) -> None:
        import torch

        self.folds = folds
        self.fold_sizes = fold_sizes
        self.one_hot = None
        if self.count > 1:  # a comparison, not F.one_hot: no device-side range check to wait for
            classes = torch.arange(self.count, device=folds.device)
            self.one_hot = (folds[:, None] == classes).to(dtype)


@dataclass
class AttachedAdapters:
    """Hooks that are live on the base model; `remove()` leaves the base exactly as it was."""

    handles: list[Any] = field(default_factory=list)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def attach(base_model, weights: FoldWeights, routing: Routing) -> AttachedAdapters:
    """Forward hooks that add every fold's adapter to the rows routed to it."""
    attached = AttachedAdapters()
    for adapted in weights.layout.modules:
        module = base_model.get_submodule(adapted.name)
        hook = _HOOKS[(adapted.kind, _layer_type(module))]
        attached.handles.append(
            module.register_forward_hook(hook(adapted, _Tensors(weights, adapted), routing))
        )
    return attached


@dataclass(frozen=True)
class _Tensors:
    """A module's tensors as of the forward pass under way (`FoldWeights.current`)."""

    weights: FoldWeights
    adapted: AdaptedModule

    def __call__(self) -> list[Any]:
        return [self.weights.current[tensor_key(self.adapted.name, key)] for key in self.adapted.tensors]


def _layer_type(module) -> str:
    import torch

    if isinstance(module, torch.nn.Embedding):
        return "embedding"
    if isinstance(module, torch.nn.Linear):
        return "linear"
    raise InputError(f"cannot adapt a {type(module).__name__}")


def _lora_linear_hook(adapted: AdaptedModule, tensors: _Tensors, routing: Routing):
    import torch
    import torch.nn.functional as F

    def hook(module, args, output):
        lora_a, lora_b = tensors()  # [k, r, in], [k, out, r]
        folds, rank = lora_a.shape[0], lora_a.shape[1]
        x = args[0]
        if adapted.dropout > 0:
            x = F.dropout(x, adapted.dropout, training=module.training)
        flat = x.reshape(-1, x.shape[-1])
        down = flat @ lora_a.reshape(folds * rank, -1).T
        if routing.one_hot is not None:
            down = (down.view(-1, folds, rank) * routing.one_hot[:, :, None]).view(-1, folds * rank)
        up = lora_b.permute(1, 0, 2).reshape(lora_b.shape[1], folds * rank)
        flat_out = output.reshape(-1, output.shape[-1])
        return torch.addmm(flat_out, down, up.T, alpha=adapted.scaling).view(output.shape)

    return hook


def _lora_embedding_hook(adapted: AdaptedModule, tensors: _Tensors, routing: Routing):
    import torch
    import torch.nn.functional as F

    def hook(module, args, output):
        lora_a, lora_b = tensors()  # [k, r, vocab], [k, hidden, r]
        folds, rank, vocab = lora_a.shape
        ids = args[0].reshape(-1)
        table = lora_a.permute(0, 2, 1).reshape(folds * vocab, rank)
        down = F.embedding(ids if folds == 1 else ids + routing.folds * vocab, table)
        if routing.one_hot is not None:
            down = (down[:, None, :] * routing.one_hot[:, :, None]).reshape(-1, folds * rank)
        up = lora_b.permute(1, 0, 2).reshape(lora_b.shape[1], folds * rank)
        flat_out = output.reshape(-1, output.shape[-1])
        return torch.addmm(flat_out, down, up.T, alpha=adapted.scaling).view(output.shape)

    return hook


def _copy_embedding_hook(adapted: AdaptedModule, tensors: _Tensors, routing: Routing):
    import torch.nn.functional as F

    def hook(module, args, output):
        (weight,) = tensors()  # [k, vocab, hidden]
        folds, vocab, hidden = weight.shape
        ids = args[0].reshape(-1)
        table = weight.reshape(folds * vocab, hidden)
        return F.embedding(ids if folds == 1 else ids + routing.folds * vocab, table).view(output.shape)

    return hook


def _copy_linear_hook(adapted: AdaptedModule, tensors: _Tensors, routing: Routing):
    import torch
    import torch.nn.functional as F

    def hook(module, args, output):
        weight, *rest = tensors()  # [k, out, in] (+ bias [k, out])
        bias = rest[0] if rest else None
        folds = weight.shape[0]

        def fold_linear(x, fold: int):
            return F.linear(x, weight[fold], None if bias is None else bias[fold])

        flat = args[0].reshape(-1, args[0].shape[-1])
        if folds == 1:
            result = fold_linear(flat, 0)
        elif routing.fold_sizes is not None:
            chunks = torch.split(flat, routing.fold_sizes)
            result = torch.cat([fold_linear(chunk, fold) for fold, chunk in enumerate(chunks)])
        else:
            terms = (routing.one_hot[:, fold, None] * fold_linear(flat, fold) for fold in range(folds))
            result = functools.reduce(operator.add, terms)
        return result.view(output.shape)

    return hook


_HOOKS = {
    ("lora", "linear"): _lora_linear_hook,
    ("lora_embedding", "embedding"): _lora_embedding_hook,
    ("copy", "embedding"): _copy_embedding_hook,
    ("copy", "linear"): _copy_linear_hook,
}


@contextlib.contextmanager
def frozen(model) -> Iterator[None]:
    """The base model's parameters need no gradients while adapters train; flags restored after."""
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
