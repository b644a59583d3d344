"""The model options every predictor and trainer config shares, and the one list of dtypes.

Predictors and trainers must load the same model the same way and see byte-identical prompts, so
the fields that decide that live in one base class: HFPredictorConfig, VLLMPredictorConfig,
PeftTrainerConfig and LlamaFactoryConfig all derive from `ModelOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..predictors.prompting import PromptStyle
from . import DEFAULT_MODEL

#: Weight dtypes a model may be loaded in; "auto" is bfloat16 on a GPU that supports it, else float32.
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: Prompt + answer tokens a model sees; longer prompts are cut from the left.
DEFAULT_MAX_SEQ_LENGTH = 1024


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return dtype


def check_device(device: str) -> str:
    """A device this machine has: `auto`, `cpu`, or a torch device name whose GPU torch can see
    (`cuda`, `cuda:N`), so a run that cannot get its device stops before any work."""
    if device in ("auto", "cpu"):
        return device
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise InputError(f"--device {device!r} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            why = "torch is a CPU build" if torch.version.cuda is None else "torch sees no CUDA GPU"
            raise InputError(
                f"--device {device}: this machine has no CUDA GPU ({why}); use --device cpu or auto"
            )
        if parsed.index is not None and parsed.index >= count:
            raise InputError(f"--device {device}: torch sees {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return device


@dataclass(frozen=True)
class ModelOptions:
    """Which model, loaded how, and how its prompts are rendered (frozen, like every engine config:
    a setting changes by `dataclasses.replace`)."""

    model_name: str = DEFAULT_MODEL
    dtype: str = "auto"
    device: str = "auto"
    #: Run model code from the hub (off unless the user opts in).
    trust_remote_code: bool = False
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    use_chat_template: bool = True
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        check_dtype(self.dtype)

    @property
    def prompt_style(self) -> PromptStyle:
        return PromptStyle(self.use_chat_template, self.system_prompt)
