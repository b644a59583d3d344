"""Model specs: built-in names, a local directory, or a hub repository id.

`resolve_model` turns a spec into a local folder plus the training recipe that suits it, or an
InputError that says what was tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import InputError
from .cache import read_marker

Recipe = Literal["tiny", "pretrained"]
BUILTIN_MODELS = ("tiny", "smollm2-135m", "random-qwen2-0.5b", "random-qwen2.5-7b")
#: The model a run uses when none is named (RunConfig, the CLI, the pytest options, model configs).
DEFAULT_MODEL = "tiny"


@dataclass(frozen=True)
class ModelSource:
    """A model ready to load from `path`; `recipe` picks the trainer defaults that suit it."""

    spec: str
    path: Path
    recipe: Recipe

    @property
    def name(self) -> str:
        return self.spec


def resolve_model(spec: str) -> ModelSource:
    if spec == "tiny":
        from .tiny import tiny_model_dir

        return ModelSource(spec, tiny_model_dir(), "tiny")
    if spec == "smollm2-135m":
        from .smollm2 import smollm2_model_dir

        return ModelSource(spec, smollm2_model_dir(), "pretrained")
    if spec in ("random-qwen2-0.5b", "random-qwen2.5-7b"):
        from .random_init import random_model_dir

        return ModelSource(spec, random_model_dir(spec), "pretrained")
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise InputError(f"model directory {path} has no config.json (not a transformers model)")
        return ModelSource(spec, path.resolve(), _recipe_of(path))
    if path.exists():
        raise InputError(f"model {spec!r} is a file; give a model directory or a built-in name")
    return ModelSource(spec, _download(spec), "pretrained")


def _recipe_of(path: Path) -> Recipe:
    return "tiny" if read_marker(path).get("recipe") == "tiny" else "pretrained"


def _download(spec: str) -> Path:
    """Fetch a hub repository id (org/name); fails with a message that lists what exists."""
    hint = f"built-in models are {', '.join(BUILTIN_MODELS)}; or give a local model directory"
    if spec.count("/") != 1 or spec.startswith((".", "/")):
        raise InputError(f"model {spec!r} not found: not a directory and not a hub id; {hint}")
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                spec, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
            )
        )
    except Exception as error:  # offline, unknown repo, gated repo: all mean "cannot use it"
        raise InputError(
            f"model {spec!r} not found locally and could not be fetched from the hub"
            f" ({type(error).__name__}: {str(error).splitlines()[0][:200]}); {hint}"
        ) from None
