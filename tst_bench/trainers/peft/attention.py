"""Attention over packed training rows: no token of one row may see another row.

Two ways, same result:
* `packed` (everywhere): rows share lines; a block-diagonal causal mask [lines, 1, W, W] goes to
  the model's own SDPA attention. The masked-out blocks are still computed, which is why lines
  are kept as short as the longest row.
* `varlen` (CUDA): every row of a micro-batch in one line, and torch's variable-length flash
  attention (`torch.nn.attention.varlen`) with the rows' boundaries: no mask, no wasted blocks.
  It is plugged into transformers as a registered attention function for the time of training and
  checked once against SDPA on the device; `auto` falls back to `packed` where it is missing or
  disagrees.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from ...errors import InputError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

AttentionMode = Literal["auto", "packed", "varlen"]
ATTENTION_MODES: tuple[str, ...] = ("auto", "packed", "varlen")
#: Name of the attention function registered with transformers while training.
VARLEN_ATTENTION = "tst_bench_varlen"
#: Keyword arguments the decoder passes through to the attention function.
CU_SEQLENS = "tst_cu_seqlens"
MAX_SEQLEN = "tst_max_seqlen"


def resolve_attention(mode: str, device: str, dtype) -> str:
    """`packed` or `varlen` for this device and dtype; `varlen` where it cannot run is an error."""
    import torch

    if mode not in ATTENTION_MODES:
        raise InputError(f"unknown attention {mode!r}; use one of {', '.join(ATTENTION_MODES)}")
    if mode == "packed":
        return "packed"
    half = dtype in (torch.bfloat16, torch.float16)
    usable = half and str(device).startswith("cuda") and varlen_works(str(device))
    if mode == "varlen" and not usable:
        raise InputError(
            "attention=varlen needs a CUDA device, a bf16/fp16 model and torch.nn.attention.varlen"
            " (torch >= 2.10)"
        )
    return "varlen" if usable else "packed"


def block_causal_mask(segments):
    """[lines, W] segment ids -> [lines, 1, W, W] bool: attend to earlier tokens of the same row."""
    import torch

    width = segments.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segments.device).tril_()
    return (segments[:, None, :, None] == segments[:, None, None, :]) & causal


@contextlib.contextmanager
def varlen_attention(model) -> Iterator[None]:
    """The model attends through `varlen_forward` for the duration of the block."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN_ATTENTION, varlen_forward)
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = VARLEN_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = before


def varlen_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers attention-function signature: [1, heads, T, d] in, [1, T, heads, d] out."""
    cu_seqlens, longest = kwargs[CU_SEQLENS], kwargs[MAX_SEQLEN]
    window = kwargs.get("sliding_window")
    if dropout or (window is not None and window < longest):
        raise InputError("attention=varlen supports no attention dropout or sliding window: use packed")
    q, k, v = (tensor[0].transpose(0, 1).contiguous() for tensor in (query, key, value))
    return varlen_kernel(q, k, v, cu_seqlens, longest, scaling).unsqueeze(0), None


def varlen_kernel(q, k, v, cu_seqlens, longest: int, scale) -> torch.Tensor:
    """Causal attention within each [cu_seqlens[i], cu_seqlens[i+1]) row; q/k/v: [T, heads, d]."""
    from torch.nn.attention.varlen import varlen_attn

    parameters = _varlen_parameters()
    options = {"scale": scale}
    if "window_size" in parameters:
        options["window_size"] = (-1, 0)
    else:
        options["is_causal"] = True
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in parameters:
            options["enable_gqa"] = True
        else:
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    out = varlen_attn(q, k, v, cu_seqlens, cu_seqlens, longest, longest, **options)
    return out[0] if isinstance(out, tuple) else out  # a tuple only with return_aux, not asked for


@functools.cache
def _varlen_parameters() -> frozenset[str]:
    from torch.nn.attention.varlen import varlen_attn

    return frozenset(inspect.signature(varlen_attn).parameters)


@functools.cache
def varlen_works(device: str) -> bool:
    """Whether varlen attention runs here and matches SDPA (forward and gradients) on a few rows."""
    import torch

    try:
        generator = torch.Generator(device="cpu").manual_seed(0)
        lengths, heads, kv_heads, dim = (5, 70, 131, 200), 4, 2, 64  # across the kernels' tiles
        total = sum(lengths)
        q, k, v = (
            torch.randn(total, h, dim, generator=generator).to(device, torch.bfloat16).requires_grad_()
            for h in (heads, kv_heads, kv_heads)
        )
        bounds = [0, *itertools.accumulate(lengths)]
        cu_seqlens = torch.tensor(bounds, dtype=torch.int32, device=device)
        out = varlen_kernel(q, k, v, cu_seqlens, max(lengths), None)
        (grad_q,) = torch.autograd.grad(out.float().square().sum(), q)
        expected, expected_grad = _sdpa_reference(q, k, v, lengths)
        ok = torch.allclose(out.float(), expected, atol=2e-2) and torch.allclose(
            grad_q.float(), expected_grad, atol=5e-2, rtol=5e-2
        )
    except Exception as error:  # a missing op or kernel means "not usable here"
        reason = f"{type(error).__name__}: {error}"
        logger.warning("varlen attention unavailable (%s); using packed SDPA", reason)
        return False
    if not ok:
        logger.warning("varlen attention disagrees with SDPA on this device; using packed SDPA")
    return ok


def _sdpa_reference(q, k, v, lengths):
    import torch
    import torch.nn.functional as F

    query = q.detach().float().requires_grad_()
    groups = q.shape[1] // k.shape[1]
    outputs, start = [], 0
    for length in lengths:
        window = slice(start, start + length)
        keys = k.detach().float()[window].repeat_interleave(groups, dim=1)
        values = v.detach().float()[window].repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(
            query[window].transpose(0, 1), keys.transpose(0, 1), values.transpose(0, 1), is_causal=True
        )
        outputs.append(out.transpose(0, 1))
        start += length
    result = torch.cat(outputs)
    (grad,) = torch.autograd.grad(result.square().sum(), query)
    return result.detach(), grad
