"""Session-wide predictors and trainers: each model is built once and shared by the tests that use it.

One BackendContext per model holds the resident base model, so the in-process predictor and the
peft trainer of a model share its weights. Only one model occupies the device at a time: asking for
another model releases the previous one's weights (the objects stay, reload and warm up again on next use). A
predictor is warmed up (model loaded, one forward pass) before its first user, so a user's memory
check compares like with like.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..backends import PREDICTORS, TRAINERS, BackendContext, check_backend_names
from ..config import RunConfig
from ..predictors.base import LLMPredictorInterface
from ..schemas import TestInstance
from ..trainers.base import LLMTrainerInterface
from .settings import TsTSettings

logger = logging.getLogger(__name__)

WARMUP = TestInstance(
    instance_id="tst-bench-warmup",
    instruction="Which option is first?\nA. first\nB. second\nAnswer with the option's letter.",
    ground_truth="A",
    format="mc",
    choices=["A", "B"],
)


class PredictorPool:
    def __init__(self, settings: TsTSettings):
        self.settings = settings
        self.contexts: dict[str, BackendContext] = {}
        self.predictors: dict[tuple[str, str], LLMPredictorInterface] = {}
        self.trainers: dict[tuple[str, str], LLMTrainerInterface] = {}
        self.active_model: str | None = None
        self._warm: set[tuple[str, str]] = set()

    def context(self, model: str) -> BackendContext:
        if model not in self.contexts:
            from ..models import resolve_model

            config = RunConfig(dataset=self.settings.datasets[0], model=model)
            self.contexts[model] = BackendContext(config, resolve_model(model))
        return self.contexts[model]

    def predictor(self, model: str, backend: str) -> LLMPredictorInterface:
        key = (model, backend)
        self._activate(model)
        if key not in self.predictors:
            self.predictors[key] = self._build(
                model, backend, self.settings.trainers[0], lambda ctx: PREDICTORS[backend](ctx)
            )
        if key not in self._warm:
            logger.info("warming up the %s predictor of %s", backend, model)
            self.predictors[key].predict([WARMUP])
            self._warm.add(key)
        return self.predictors[key]

    def trainer(self, model: str, trainer: str) -> LLMTrainerInterface:
        key = (model, trainer)
        self._activate(model)
        if key not in self.trainers:
            self.trainers[key] = self._build(
                model, self.settings.backends[0], trainer, lambda ctx: TRAINERS[trainer](ctx)
            )
        return self.trainers[key]

    def _build(self, model: str, backend: str, trainer: str, builder: Callable[[BackendContext], Any]) -> Any:
        context = self.context(model)
        context.config.backend, context.config.trainer = backend, trainer
        check_backend_names(context.config)
        return builder(context)

    def _activate(self, model: str) -> None:
        """Give the device to `model`: every other model's predictors and weights are released."""
        if self.active_model not in (None, model):
            self.release(self.active_model)
        self.active_model = model

    def release(self, model: str) -> None:
        for (name, _), predictor in self.predictors.items():
            if name == model:
                predictor.reset()
        self._release_resident(model)
        self._warm = {key for key in self._warm if key[0] != model}

    def _release_resident(self, model: str) -> None:
        context = self.contexts.get(model)
        if context is not None and context._resident is not None:
            context._resident.release()

    def close(self) -> None:
        for predictor in self.predictors.values():
            predictor.close()
        for trainer in self.trainers.values():
            trainer.close()
        for model in self.contexts:
            self._release_resident(model)
        self.predictors.clear()
        self.trainers.clear()
        self.contexts.clear()
