"""One interface for every inference backend, and the logic all of them share.

A backend implements two primitives, in the spirit of lm-evaluation-harness:
`choice_logprobs` (log-probabilities of each answer label right after the prompt, one forward
pass, no free generation) and `generate_texts` (greedy generation for numeric and open-ended
answers). `PromptScoringPredictor.predict` turns them into LLMPredictionResults with the same
prediction and option-probability contract whatever the engine. Predictors never see the answer:
s(x) is computed from their output by the fold contract (evaluator.py).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from ..metrics import parse_mc_letter, parse_numeric_answer
from ..schemas import LLMPredictionResult, LoRAAdapterInfo, TestInstance

AdapterRef = LoRAAdapterInfo | str | Path


def adapter_path(adapter: AdapterRef) -> Path:
    return Path(adapter.adapter_path if isinstance(adapter, LoRAAdapterInfo) else adapter)


class LLMPredictorInterface(ABC):
    """Predicts held-out instances, optionally through a LoRA adapter."""

    #: True when the predictor holds device memory of its own, outside a resident model it shares
    #: with the trainer (a vLLM engine): it releases it before every training (`release_device`).
    owns_device_memory: bool = False

    @abstractmethod
    def predict(self, instances: Sequence[TestInstance]) -> list[LLMPredictionResult]: ...

    @abstractmethod
    def load_adapter(self, adapter: AdapterRef) -> None: ...

    @abstractmethod
    def unload_adapter(self) -> None:
        """Predict with the base model again; cheap, keeps the base loaded."""

    @abstractmethod
    def reset(self) -> None:
        """Free every resource (model weights, engine, device memory); reloads on next use."""

    def take_event_timings(self) -> dict[str, float]:
        """Seconds spent in engine events (build, sleep, wake, teardown) since the last call,
        summed per event name; engines without such events report nothing."""
        return {}

    def release_device(self) -> None:
        """Hand the device memory to the trainer; the next use takes it back.

        Engines that can pause without losing their state (vLLM sleep mode, or a CPU engine that
        keeps running) override this to avoid a full rebuild.
        """
        self.reset()

    def close(self) -> None:
        self.reset()


class PromptScoringPredictor(LLMPredictorInterface):
    """Routes multiple choice to label scoring and the rest to generation."""

    @abstractmethod
    def choice_logprobs(self, instances: Sequence[TestInstance]) -> list[dict[str, float]]:
        """Full-vocabulary log-probability of each choice label as the first answer token."""

    @abstractmethod
    def generate_texts(self, instances: Sequence[TestInstance]) -> list[str]: ...

    def predict(self, instances: Sequence[TestInstance]) -> list[LLMPredictionResult]:
        results: list[LLMPredictionResult | None] = [None] * len(instances)
        choice_positions = [i for i, inst in enumerate(instances) if inst.format == "mc"]
        other_positions = [i for i, inst in enumerate(instances) if inst.format != "mc"]
        if choice_positions:
            batch = [instances[i] for i in choice_positions]
            for position, instance, logprobs in zip(
                choice_positions, batch, self.choice_logprobs(batch), strict=True
            ):
                results[position] = result_from_choice_logprobs(instance, logprobs)
        if other_positions:
            batch = [instances[i] for i in other_positions]
            for position, instance, text in zip(
                other_positions, batch, self.generate_texts(batch), strict=True
            ):
                results[position] = result_from_generation(instance, text)
        return [result for result in results if result is not None]


def result_from_choice_logprobs(instance: TestInstance, logprobs: dict[str, float]) -> LLMPredictionResult:
    """Prediction = most likely label; the labels' probabilities renormalised over the labels."""
    peak = max(logprobs.values())
    weights = {label: math.exp(value - peak) for label, value in logprobs.items()}
    total = sum(weights.values())
    probs = {label: weight / total for label, weight in weights.items()}
    prediction = max(probs, key=lambda label: (probs[label], -ord(label[0])))
    return LLMPredictionResult(
        instance_id=instance.instance_id,
        prediction=prediction,
        confidence=probs[prediction],
        option_probs=probs,
        option_logprobs=logprobs,
    )


def result_from_generation(instance: TestInstance, text: str) -> LLMPredictionResult:
    """Parse a generated answer (a letter, a number, or the text itself)."""
    answer = text.strip()
    if instance.format == "mc" and instance.choices:
        answer = parse_mc_letter(text, instance.choices) or answer
    elif instance.format == "num":
        value = parse_numeric_answer(text)
        answer = "" if value is None else f"{value:g}"
    return LLMPredictionResult(
        instance_id=instance.instance_id,
        prediction=answer,
        raw_output=text,
    )
