"""What an adapter is trained with: its LoRA shape and its optimisation, defined once.

Both LoRA trainers read these fields: the peft trainer in its own loop, the LlamaFactory trainer
as the YAML keys it derives from them (llamafactory.py). Their configs inherit the fields
(`LoRATrainerConfig`), so `--trainer-option learning_rate=...` sets the same setting whichever
trainer runs; the defaults per model are in recipes.py. One `TrainingSettings` value describes one
adapter's training: frozen, hashable and checked when made, so a run can hold one per adapter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..models.options import ModelOptions

#: Every linear layer except the output layer (peft's name; LlamaFactory calls it "all").
ALL_LINEAR = "all-linear"
ALL_LINEAR_ALIASES = (ALL_LINEAR, "all")


@dataclass(frozen=True)
class TrainingSettings:
    """One adapter's LoRA shape and optimisation (AdamW, linear warm-up then linear decay)."""

    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    #: Modules that get LoRA: ALL_LINEAR or module names.
    target_modules: str | tuple[str, ...] = ALL_LINEAR
    #: Modules trained in full (peft `modules_to_save`, LlamaFactory `additional_target`).
    modules_to_save: tuple[str, ...] | None = None
    learning_rate: float = 2e-4
    num_epochs: int = 3
    batch_size: int = 16
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    #: Initialisation and data order, where the fold does not give its own seed.
    seed: int = 0

    def __post_init__(self) -> None:
        problems = [problem for problem in map(self._normalise, SETTING_CHECKS) if problem]
        if problems:
            raise InputError("training settings: " + "; ".join(problems))
        if self.target_modules in ALL_LINEAR_ALIASES:
            object.__setattr__(self, "target_modules", ALL_LINEAR)
        elif not isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", _names("target_modules", self.target_modules))
        if self.modules_to_save is not None:
            object.__setattr__(self, "modules_to_save", _names("modules_to_save", self.modules_to_save))

    def _normalise(self, check: SettingCheck) -> str | None:
        """Set the field to its number type (YAML reads `1e-3` as text); say what is wrong with it."""
        value = getattr(self, check.name)
        try:
            number = _as_number(value, check.kind)
        except (TypeError, ValueError):
            kind = "a whole number" if check.kind is int else "a number"
            return f"{check.name} must be {kind}, got {value!r}"
        object.__setattr__(self, check.name, number)
        if not check.low <= number <= check.high or (check.open_low and number == check.low):
            return f"{check.name} must be {check.describe()}, got {value!r}"
        return None

    @classmethod
    def of(cls, source: Any) -> TrainingSettings:
        """The settings part of a trainer config (or of any object with these fields)."""
        return cls(**{field.name: getattr(source, field.name) for field in dataclasses.fields(cls)})

    def options(self) -> dict[str, Any]:
        """The settings as keyword arguments of a trainer config."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclass(frozen=True)
class LoRATrainerConfig(ModelOptions, TrainingSettings):
    """What every LoRA trainer's config holds: the model options and the training settings."""

    def __post_init__(self) -> None:
        ModelOptions.__post_init__(self)
        TrainingSettings.__post_init__(self)

    @property
    def training(self) -> TrainingSettings:
        return TrainingSettings.of(self)


@dataclass(frozen=True)
class SettingCheck:
    """A numeric setting's type and range."""

    name: str
    kind: type
    low: float
    high: float = float("inf")
    #: True when the low end itself is not allowed.
    open_low: bool = False

    def describe(self) -> str:
        if self.high != float("inf"):
            return f"between {self.low:g} and {self.high:g}"
        return f"{'above' if self.open_low else 'at least'} {self.low:g}"


SETTING_CHECKS = (
    SettingCheck("lora_rank", int, 1),
    SettingCheck("lora_alpha", int, 1),
    SettingCheck("lora_dropout", float, 0, 1),
    SettingCheck("learning_rate", float, 0, open_low=True),
    SettingCheck("num_epochs", int, 1),
    SettingCheck("batch_size", int, 1),
    SettingCheck("warmup_ratio", float, 0, 1),
    SettingCheck("max_grad_norm", float, 0),
    SettingCheck("weight_decay", float, 0),
    SettingCheck("seed", int, 0),
)


def _as_number(value: Any, kind: type) -> int | float:
    if isinstance(value, bool):
        raise TypeError(value)
    number = float(value)
    if kind is not int:
        return number
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


def _names(field_name: str, value: Any) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise InputError(f"training settings: {field_name} must be module names, got {value!r}")
    return names
