"""Session-wide predictors and trainers: each model is built once and shared by the tests that use it.

Per model one resident base model is shared by its in-process predictors and trainers (the hf
predictor and the peft trainer use the same weights). Only one model occupies the device at a time:
asking for another model releases the previous one's weights (the objects stay, reload and warm up
again on next use). A predictor that can predict without an adapter is warmed up (model loaded, one
forward pass) before its first user, so a user's memory check compares like with like.

A trainer is cached by what changes it: the model, the trainer, and whether its adapters must be
servable by vLLM (the backend decides that; registry.BackendSpec.vllm_adapters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from ..backends import BackendContext, build_predictor, build_trainer
from ..models import ModelSource, resolve_model
from ..models.resident import ResidentModel
from ..predictors.base import LLMPredictorInterface
from ..registry import backend_spec, check_pairing
from ..schemas import TestInstance
from ..trainers.base import LLMTrainerInterface
from .settings import TsTSettings, run_config

logger = logging.getLogger(__name__)

WARMUP = TestInstance(
    instance_id="tst-bench-warmup",
    instruction="Which option is first?\nA. first\nB. second\nAnswer with the option's letter.",
    ground_truth="A",
    format="mc",
    choices=["A", "B"],
)


class TrainerKey(NamedTuple):
    model: str
    trainer: str
    vllm_adapters: bool


class ModelCache:
    def __init__(self, settings: TsTSettings):
        self.settings = settings
        self.sources: dict[str, ModelSource] = {}
        self.residents: dict[str, ResidentModel] = {}
        self.predictors: dict[tuple[str, str], LLMPredictorInterface] = {}
        self.trainers: dict[TrainerKey, LLMTrainerInterface] = {}
        self.active_model: str | None = None
        self._warm: set[tuple[str, str]] = set()

    def _build(self, model: str, backend: str, trainer: str, build: Callable[[BackendContext], Any]) -> Any:
        """Build for this combination; the model's resident base model is made once, by the first
        builder that needs one, and shared with every later one."""
        if model not in self.sources:
            self.sources[model] = resolve_model(model)
        config = run_config(self.settings, model=model, backend=backend, trainer=trainer)
        context = BackendContext(config, self.sources[model], self.residents.get(model))
        built = build(context)
        if context.shared_resident is not None:
            self.residents[model] = context.shared_resident
        return built

    def predictor(self, model: str, backend: str) -> LLMPredictorInterface:
        key = (model, backend)
        self._activate(model)
        if key not in self.predictors:
            self.predictors[key] = self._build(model, backend, self.settings.trainers[0], build_predictor)
        if key not in self._warm:
            if backend_spec(backend).zero_shot:  # others predict only through a trained adapter
                logger.info("warming up the %s predictor of %s", backend, model)
                self.predictors[key].predict([WARMUP])
            self._warm.add(key)
        return self.predictors[key]

    def trainer(self, model: str, trainer: str, backend: str) -> LLMTrainerInterface:
        """The trainer whose adapters `backend` serves."""
        check_pairing(backend, trainer)
        key = TrainerKey(model, trainer, backend_spec(backend).vllm_adapters)
        self._activate(model)
        if key not in self.trainers:
            self.trainers[key] = self._build(model, backend, trainer, build_trainer)
        return self.trainers[key]

    def _activate(self, model: str) -> None:
        """Give the device to `model`: every other model's predictors and weights are released."""
        if self.active_model not in (None, model):
            self.release(self.active_model)
        self.active_model = model

    def release(self, model: str) -> None:
        for (name, _), predictor in self.predictors.items():
            if name == model:
                predictor.reset()
        if model in self.residents:
            self.residents[model].release()
        self._warm = {key for key in self._warm if key[0] != model}

    def close(self) -> None:
        for predictor in self.predictors.values():
            predictor.close()
        for trainer in self.trainers.values():
            trainer.close()
        for resident in self.residents.values():
            resident.release()
        self.predictors.clear()
        self.trainers.clear()
        self.residents.clear()
        self.sources.clear()
