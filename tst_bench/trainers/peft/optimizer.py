"""AdamW, gradient-norm clipping and the warm-up/linear-decay schedule, for k folds at once.

Row j of the [k, P] value buffer is fold j's whole adapter, so one elementwise pass updates every
fold, each with its own learning rate, step count, bias correction and clip factor: the same
arithmetic as `torch.optim.AdamW` + `clip_grad_norm_` + the schedule on each fold alone, with a
few kernel launches per step whatever the number of tensors, and nothing read back to the host.
A fold whose epoch has no step left (folds of unequal size) is left exactly as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
CLIP_EPS = 1e-6  # what clip_grad_norm_ adds to the norm


@dataclass(frozen=True)
class Schedule:
    """Linear warm-up over the first `warmup_steps`, then linear decay to zero at `total_steps`."""

    learning_rate: float
    total_steps: int
    warmup_steps: int

    @classmethod
    def for_steps(cls, learning_rate: float, total_steps: int, warmup_ratio: float) -> Schedule:
        total = max(1, total_steps)
        return cls(learning_rate, total, int(total * warmup_ratio))

    def rate(self, step: int) -> float:
        if step < self.warmup_steps:
            factor = (step + 1) / (self.warmup_steps + 1)
        else:
            factor = max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))
        return self.learning_rate * factor


class FoldAdamW:
    def __init__(
        self,
        values,
        grads,
        schedules: Sequence[Schedule],
        weight_decay: float = 0.0,
        max_grad_norm: float | None = 1.0,
    ):
        import torch

        self.values, self.grads = values, grads
        self.schedules = list(schedules)
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.exp_avg = torch.zeros_like(values)
        self.exp_avg_sq = torch.zeros_like(values)
        self.steps_taken = [0] * len(self.schedules)

    def step(self, active: Sequence[bool]) -> None:
        """Clip each active fold's gradient to `max_grad_norm`, then one AdamW step for it."""
        import torch

        coefficients = self._coefficients(active)
        decay, average_rate, square_keep, square_rate, step_size, correction = (
            coefficients[:, index : index + 1] for index in range(6)
        )
        with torch.no_grad():
            grads = self.grads
            if self.max_grad_norm is not None and self.max_grad_norm > 0:
                norms = torch.linalg.vector_norm(grads, dim=1, keepdim=True)
                grads.mul_((self.max_grad_norm / (norms + CLIP_EPS)).clamp_(max=1.0))
            self.values.mul_(decay)
            self.exp_avg.lerp_(grads, average_rate)
            self.exp_avg_sq.mul_(square_keep).add_(grads.square().mul_(square_rate))
            denominator = self.exp_avg_sq.sqrt().div_(correction).add_(ADAM_EPS)
            self.values.sub_(self.exp_avg.div(denominator).mul_(step_size))

    def _coefficients(self, active: Sequence[bool]):
        """Per fold: weight-decay factor, first/second-moment rates, step size and the second
        moment's bias correction; an inactive fold gets the identity."""
        import torch

        beta1, beta2 = ADAM_BETAS
        rows = []
        for fold, (schedule, stepping) in enumerate(zip(self.schedules, active, strict=True)):
            if not stepping:
                rows.append((1.0, 0.0, 1.0, 0.0, 0.0, 1.0))
                continue
            rate = schedule.rate(self.steps_taken[fold])
            self.steps_taken[fold] += 1
            count = self.steps_taken[fold]
            step_size = rate / (1 - beta1**count)
            correction = math.sqrt(1 - beta2**count)
            rows.append((1 - rate * self.weight_decay, 1 - beta1, beta2, 1 - beta2, step_size, correction))
        table = torch.tensor(rows, dtype=self.values.dtype)
        if self.values.device.type == "cuda":
            return table.pin_memory().to(self.values.device, non_blocking=True)
        return table.to(self.values.device)
