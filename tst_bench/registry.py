"""The registry: every backend and trainer name, where its builder lives, and what it can do.

A leaf module (standard library and tst_bench.errors only), so the engine, the CLI and the pytest
plugin can ask what a backend or trainer does without importing any engine. Builders are named as
"module:function" strings and imported on first use, the way lm-evaluation-harness maps model
names; each builder takes a `backends.BackendContext` and returns the predictor or trainer.

What a name can do before anything is built (zero-shot, vLLM-servable adapters, a Ray pool,
pairings) is declared here and nowhere else. What a built object does in the fold contract (a
predictor that `owns_device_memory`, a trainer that `needs_exclusive_device` or
`trains_folds_together`, which the peft trainer decides from its config) is declared on its class
and read from the object (predictors/base.py, trainers/base.py).

Adding an engine: write its builder (tst_bench/builders.py holds the built-in ones) and add one
entry below saying what it can do.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class BackendSpec:
    """An inference backend: builds an `LLMPredictorInterface`."""

    name: str
    builder: str
    summary: str
    #: Predicts without a trained adapter, so the run can score the zero-shot baseline.
    zero_shot: bool = True
    #: Serves adapters through vLLM: trainers must produce adapters vLLM can load.
    vllm_adapters: bool = False
    #: Spreads inference over a pool of Ray workers, each running backend `pool_of`.
    pool_of: str | None = None
    #: The only trainers it works with; None: any.
    trainers: frozenset[str] | None = None
    #: Runs a neural model on a torch device (False: TsT-RF's forests, so --device is not checked).
    uses_device: bool = True


@dataclass(frozen=True)
class TrainerSpec:
    """A trainer: builds an `LLMTrainerInterface`."""

    name: str
    builder: str
    summary: str
    #: The only backends it works with; None: any.
    backends: frozenset[str] | None = None
    #: Runs a neural model on a torch device.
    uses_device: bool = True


BUILDERS = "tst_bench.builders"
RF_ONLY = frozenset({"rf"})

BACKENDS: Mapping[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec("hf", f"{BUILDERS}:hf_predictor", "transformers + peft in this process"),
        BackendSpec(
            "vllm",
            f"{BUILDERS}:vllm_predictor",
            "a vLLM engine, adapters as LoRARequests",
            vllm_adapters=True,
        ),
        BackendSpec(
            "ray_hf",
            f"{BUILDERS}:ray_pool_predictor",
            "hf on a pool of Ray workers (data parallel)",
            pool_of="hf",
        ),
        BackendSpec(
            "ray_vllm",
            f"{BUILDERS}:ray_pool_predictor",
            "vllm on a pool of Ray workers (data parallel)",
            vllm_adapters=True,
            pool_of="vllm",
        ),
        BackendSpec(
            "rf",
            f"{BUILDERS}:rf_predictor",
            "TsT-RF: a Random Forest on question and option features",
            zero_shot=False,  # an unfitted forest has nothing to predict with
            trainers=RF_ONLY,
            uses_device=False,
        ),
    )
}

TRAINERS: Mapping[str, TrainerSpec] = {
    spec.name: spec
    for spec in (
        TrainerSpec("peft", f"{BUILDERS}:peft_trainer", "LoRA with peft on the resident model"),
        TrainerSpec(
            "llamafactory",
            f"{BUILDERS}:llamafactory_trainer",
            "LoRA with `llamafactory-cli train`, one process per fold",
        ),
        TrainerSpec(
            "rf", f"{BUILDERS}:rf_trainer", "fits TsT-RF's forests", backends=RF_ONLY, uses_device=False
        ),
    )
}


def backend_spec(name: str) -> BackendSpec:
    try:
        return BACKENDS[name]
    except KeyError:
        raise InputError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}") from None


def trainer_spec(name: str) -> TrainerSpec:
    try:
        return TRAINERS[name]
    except KeyError:
        raise InputError(f"unknown trainer {name!r}; choose one of {sorted(TRAINERS)}") from None


def pairing_problem(backend: str, trainer: str) -> str | None:
    """Why `backend` and `trainer` cannot run together, or None when they can (or a name is unknown)."""
    backend_entry, trainer_entry = BACKENDS.get(backend), TRAINERS.get(trainer)
    if backend_entry is None or trainer_entry is None:
        return None
    allowed_trainers = backend_entry.trainers
    allowed_backends = trainer_entry.backends
    if allowed_trainers is not None and trainer not in allowed_trainers:
        return f"the {backend} backend works only with trainer(s) {', '.join(sorted(allowed_trainers))}"
    if allowed_backends is not None and backend not in allowed_backends:
        return f"the {trainer} trainer works only with backend(s) {', '.join(sorted(allowed_backends))}"
    return None


def check_pairing(backend: str, trainer: str) -> None:
    """Both names are registered and go together; else an InputError that says what would."""
    backend_spec(backend)
    trainer_spec(trainer)
    problem = pairing_problem(backend, trainer)
    if problem is not None:
        raise InputError(f"{problem} (got --backend {backend} --trainer {trainer})")


def load_builder(spec: BackendSpec | TrainerSpec) -> Callable[[Any], Any]:
    """Import the entry's "module:function" builder."""
    module_name, _, function = spec.builder.partition(":")
    return getattr(importlib.import_module(module_name), function)
