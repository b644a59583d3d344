"""A deliberate memory leak, to prove the clean-up check fails when memory is not released.

As a FoldObserver it allocates a filled tensor and keeps it alive, exactly what training that
forgets a reference does: once per fold (`per="fold"`, e.g. each adapter's optimizer state kept)
or once per training pass (`per="pass"`, e.g. a pass's batch buffers kept). Both happen when the
pass starts, before any of its folds is measured, as a real leak inside a pass that trains several
folds together would. The tensor is filled so its pages are really resident (RSS on CPU) and goes
through torch's allocator on the run's device (NVML on GPU).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from .folds import FoldSpec
from .hardware import MIB
from .models.resident import free_memory, pick_device
from .observers import FoldObserver

logger = logging.getLogger(__name__)

LeakUnit = Literal["fold", "pass"]
LEAK_UNITS: tuple[LeakUnit, ...] = ("fold", "pass")


class LeakInjector(FoldObserver):
    def __init__(self, size_mib: float, device: str = "auto", per: LeakUnit = "fold"):
        if size_mib <= 0:
            raise ValueError(f"a leak needs a positive size, got {size_mib} MiB")
        if per not in LEAK_UNITS:
            raise ValueError(f"a leak is per {' or per '.join(LEAK_UNITS)}, got {per!r}")
        self.size_mib = size_mib
        self.device = device
        self.per = per
        self.kept: list = []

    def pass_started(self, specs: Sequence[FoldSpec]) -> None:
        if self.per == "pass":
            self._keep(f"the pass of {', '.join(spec.key for spec in specs)}")

    def fold_started(self, spec: FoldSpec) -> None:
        if self.per == "fold":
            self._keep(f"fold {spec.key}")

    def _keep(self, where: str) -> None:
        import torch

        device = pick_device(self.device)
        self.kept.append(torch.ones(int(self.size_mib * MIB), dtype=torch.uint8, device=device))
        logger.warning("deliberate leak: kept %.0f MiB alive on %s in %s", self.size_mib, device, where)

    @property
    def leaked_mib(self) -> float:
        return self.size_mib * len(self.kept)

    def release(self) -> None:
        self.kept.clear()
        free_memory()
