"""A base model loaded once in this process and shared by the in-process predictor and trainer.

Keeping the base resident across folds is what makes the in-process path cheap: each fold only
adds and removes a small adapter. `release()` drops it and returns the memory (CUDA caches
included); the next `model` access loads it again.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator
from typing import Any

from . import ModelSource, resolve_model
from .options import ModelOptions, check_dtype

logger = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str):
    """The torch dtype for a name of models.options.DTYPES on `device`."""
    import torch

    if check_dtype(dtype) == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class ResidentModel:
    """Lazily loaded base model + tokenizer on one device."""

    def __init__(
        self,
        source: ModelSource,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ):
        self.source = source
        self.device = pick_device(device)
        self.requested_dtype = check_dtype(dtype)
        self.trust_remote_code = trust_remote_code
        self._model: Any = None
        self._tokenizer: Any = None

    @classmethod
    def for_options(cls, options: ModelOptions) -> ResidentModel:
        """The model a predictor's or trainer's config names, loaded (on first use) as it asks."""
        return cls(
            resolve_model(options.model_name),
            device=options.device,
            dtype=options.dtype,
            trust_remote_code=options.trust_remote_code,
        )

    @property
    def dtype(self):
        """Resolved on first use: asking CUDA about bf16 creates a context we may never need."""
        return pick_dtype(self.requested_dtype, self.device)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.source, self.trust_remote_code)
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            from transformers import AutoModelForCausalLM

            logger.info("loading %s on %s (%s)", self.source.spec, self.device, self.dtype)
            model = AutoModelForCausalLM.from_pretrained(
                self.source.path, dtype=self.dtype, trust_remote_code=self.trust_remote_code
            )
            # transformers wraps Module.to with functools.wraps, which pyright reads as unbound
            self._model = model.to(self.device).eval()  # pyright: ignore[reportArgumentType]
        return self._model

    @model.setter
    def model(self, value) -> None:
        self._model = value

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def release(self) -> None:
        """Drop the model and give its memory back (GPU caches too)."""
        self._model = None
        free_memory()


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with `count` torch threads; results do not depend on it, only speed does."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
