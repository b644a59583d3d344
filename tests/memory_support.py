"""Memory readings a test sets itself: a probe whose level the test moves, fold readings built by hand."""

from __future__ import annotations

from tst_bench.memory import MemoryProbe
from tst_bench.schemas import DeviceMemory


def reading(used: float, device: str = "cuda:0") -> list[DeviceMemory]:
    return [DeviceMemory(device=device, used_mib=used, total_mib=80_000)]


class ScriptedProbe(MemoryProbe):
    """Reads whatever level the test set last: the readings of a fold are known exactly."""

    source = "nvml"

    def __init__(self):
        self.level = 0.0

    @property
    def devices(self) -> list[str]:
        return ["cuda:0"]

    def read(self) -> list[DeviceMemory]:
        return reading(self.level)
