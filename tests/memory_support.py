"""Memory readings a test sets itself: a probe whose level the test moves, fold readings built
by hand, and a run's passes replayed on it the way NVML sees them on a GPU."""

from __future__ import annotations

from collections.abc import Sequence

from tst_bench.executors.base import training_passes
from tst_bench.folds import FoldSpec
from tst_bench.memory import MemoryMonitor, MemoryProbe, MemoryReport
from tst_bench.observers import FoldObserver, FoldObservers
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


class ScriptedLeak(FoldObserver):
    """What LeakInjector does to NVML on CUDA, on the scripted device: `mib` more in use for good,
    per fold or per training pass, from the moment the pass starts."""

    def __init__(self, probe: ScriptedProbe, mib: float, per: str):
        self.probe, self.mib, self.per = probe, mib, per

    def pass_started(self, specs: Sequence[FoldSpec]) -> None:
        if self.per == "pass":
            self.probe.level += self.mib

    def fold_started(self, spec: FoldSpec) -> None:
        if self.per == "fold":
            self.probe.level += self.mib


def run_in_passes(
    folds: int, folds_per_pass: int | None, leak_mib: float = 0, leak_per: str = "fold", warmup_mib: float = 0
) -> MemoryReport:
    """The fold contract's events as NVML sees them on a GPU, without a GPU: the executor's passes
    (`training_passes`); each pass starts all its folds, trains them together (the first pass
    keeps `warmup_mib` for good: CUDA's one-time kernels and workspaces), then scores and cleans up
    each fold in turn."""
    probe = ScriptedProbe()
    probe.level = 2000.0
    plan = [FoldSpec(0, fold, folds, (), ()) for fold in range(folds)]
    with MemoryMonitor(probe, interval_s=3600) as monitor:
        leaks = [ScriptedLeak(probe, leak_mib, leak_per)] if leak_mib else []
        observers = FoldObservers([monitor, *leaks])
        for index, specs in enumerate(training_passes(plan, folds_per_pass)):
            observers.started(specs)
            probe.level += 6000  # the pass's activations and optimizer states
            probe.level -= 6000 - (warmup_mib if index == 0 else 0)
            for spec in specs:
                observers.abandoned(spec)  # closes each observer's window, as `finished` does
        return monitor.report()
