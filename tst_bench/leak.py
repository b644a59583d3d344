"""A deliberate memory leak, to prove the clean-up check fails when memory is not released.

As a FoldObserver it allocates a filled tensor when each fold starts and keeps it alive, exactly
what a fold that forgets a reference does. The tensor is filled so its pages are really resident
(RSS on CPU) and goes through torch's allocator on the run's device (NVML on GPU).
"""

from __future__ import annotations

import logging

from .folds import FoldSpec
from .hardware import MIB

logger = logging.getLogger(__name__)


class LeakInjector:
    def __init__(self, size_mib: float, device: str = "auto"):
        if size_mib <= 0:
            raise ValueError(f"a leak needs a positive size, got {size_mib} MiB")
        self.size_mib = size_mib
        self.device = device
        self.kept: list = []

    def fold_started(self, spec: FoldSpec) -> None:
        import torch

        from .models.resident import pick_device

        device = pick_device(self.device)
        self.kept.append(torch.ones(int(self.size_mib * MIB), dtype=torch.uint8, device=device))
        logger.warning(
            "deliberate leak: kept %.0f MiB alive on %s in fold %s", self.size_mib, device, spec.key
        )

    def fold_finished(self, spec: FoldSpec) -> None:
        return None

    @property
    def leaked_mib(self) -> float:
        return self.size_mib * len(self.kept)

    def release(self) -> None:
        from .models.resident import free_memory

        self.kept.clear()
        free_memory()
