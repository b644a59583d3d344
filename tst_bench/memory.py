"""Memory around every fold: NVML per GPU, or this process's RSS where there is no NVML.

`MemoryMonitor` is a FoldObserver: it reads every device before the run, before each fold, after
each fold's clean-up, and samples in a background thread while the fold runs to catch its peak.
Each fold has its own window, so folds running side by side (Ray) are each recorded under their key.
NVML gives device-wide used/total memory and, where NVML lists this process (not inside every
container: PIDs may be the host's), the process's own share. Without NVML the monitor says why and
records the process RSS instead (source "rss"); it never reports a number it did not read.

`check_memory` is the regression check: after each fold's clean-up, memory must be back within a
tolerance of the baseline (what was in use when the first fold started, the base model resident);
its table is what a failing assertion shows.
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from .folds import FoldSpec
from .hardware import (
    MIB,
    GpuDevice,
    discover_gpus,
    nvml,
    nvml_mib,
    nvml_status,
    release_nvml,
    total_memory_mib,
)
from .observers import FoldObserver
from .schemas import DeviceMemory, FoldMemory, MemorySource

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.02
#: MiB a device may hold after a fold's clean-up above the steady baseline (pytest, `tst-bench compare`).
DEFAULT_TOLERANCE_MIB = 256.0
#: What the first training pass may leave behind for good. On its first training step CUDA loads the
#: backward kernels and cuBLAS allocates its workspaces; that memory stays with the process (measured
#: on an H100 with a 0.5B model: +650 MiB after the first fold, then flat). It is warm-up, not a
#: leak: a leak shows up as growth from one fold to the next, which the tolerance catches.
DEFAULT_WARMUP_MIB = 1024.0


class MemoryProbe(ABC):
    """Reads the memory of each watched device once."""

    source: MemorySource
    note: str = ""

    @abstractmethod
    def read(self) -> list[DeviceMemory]: ...

    @property
    @abstractmethod
    def devices(self) -> list[str]: ...

    def close(self) -> None:
        """Release the library handle, if any."""


class NvmlProbe(MemoryProbe):
    """Device-wide used/total per GPU from NVML, plus this process's usage where NVML lists it."""

    source: MemorySource = "nvml"

    def __init__(self, gpus: Sequence[GpuDevice]):
        if not gpus:
            raise ValueError("NvmlProbe needs at least one GPU")
        self._nvml = nvml()
        self.gpus = list(gpus)
        self._handles = [self._nvml.nvmlDeviceGetHandleByUUID(gpu.uuid) for gpu in self.gpus]
        self._pid = os.getpid()
        self.note = f"NVML device memory of {', '.join(g.label for g in self.gpus)} ({self.gpus[0].name})"

    @property
    def devices(self) -> list[str]:
        return [gpu.label for gpu in self.gpus]

    def read(self) -> list[DeviceMemory]:
        readings = []
        for gpu, handle in zip(self.gpus, self._handles, strict=True):
            info = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            readings.append(
                DeviceMemory(
                    device=gpu.label,
                    used_mib=nvml_mib(info.used),
                    total_mib=nvml_mib(info.total),
                    process_mib=self._process_mib(handle),
                    uuid=gpu.uuid,
                )
            )
        return readings

    def _process_mib(self, handle) -> float | None:
        try:
            processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except self._nvml.NVMLError:
            return None
        for process in processes:
            used = getattr(process, "usedGpuMemory", None)
            if process.pid == self._pid and used is not None:
                return used / MIB
        return None

    def close(self) -> None:
        if self._handles:
            self._handles = []
            release_nvml()


class RssProbe(MemoryProbe):
    """This process's resident set size, the only honest number without NVML."""

    source: MemorySource = "rss"

    def __init__(self, note: str = ""):
        self.note = note
        self._label = f"rss (pid {os.getpid()})"
        self._total = total_memory_mib()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._statm = os.path.exists("/proc/self/statm")
        if not self._statm:
            import psutil  # outside Linux /proc is missing; psutil reads RSS there

            self._process = psutil.Process()

    @property
    def devices(self) -> list[str]:
        return [self._label]

    def rss_mib(self) -> float:
        if self._statm:
            with open("/proc/self/statm", encoding="ascii") as handle:
                return int(handle.read().split()[1]) * self._page / MIB
        return self._process.memory_info().rss / MIB

    def read(self) -> list[DeviceMemory]:
        rss = self.rss_mib()
        return [DeviceMemory(device=self._label, used_mib=rss, total_mib=self._total, process_mib=rss)]


def open_probe(gpus: Sequence[GpuDevice] | None = None) -> MemoryProbe:
    """NVML over the visible GPUs when it works, else RSS with the reason in `note`."""
    gpus = list(discover_gpus()) if gpus is None else list(gpus)
    status = nvml_status()
    if not status.available:
        note = f"{status.describe()}; recording this process's RSS instead of GPU memory"
    elif not gpus:
        note = "NVML works but no GPU is visible (CUDA_VISIBLE_DEVICES); recording this process's RSS"
    else:
        return NvmlProbe(gpus)
    logger.info("%s", note)
    return RssProbe(note)


@dataclass
class PeakWindow:
    """The highest reading per device since a window opened, and how many readings that covers."""

    before: list[DeviceMemory]
    peak: list[DeviceMemory]
    samples: int = 1

    def add(self, reading: list[DeviceMemory]) -> None:
        self.peak = [higher(old, new) for old, new in zip(self.peak, reading, strict=True)]
        self.samples += 1


class PeakSampler:
    """One thread reading the probe every `interval_s` for every open window (one per fold).

    Readings taken outside the thread (a fold starting or ending) count for every window open at
    that moment too: they are real readings while those folds ran.
    """

    def __init__(self, probe: MemoryProbe, interval_s: float = DEFAULT_INTERVAL_S):
        self.probe = probe
        self.interval_s = interval_s
        self._lock = threading.Lock()  # the windows
        self._control = threading.Lock()  # opening, closing, the thread's start and stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._windows: dict[str, PeakWindow] = {}

    def open(self, keys: Sequence[str]) -> list[DeviceMemory]:
        """Open a window for each of `keys`, all from one reading, which it returns."""
        with self._control:
            with self._lock:
                for key in keys:
                    if key in self._windows:
                        raise ValueError(f"memory of {key} is already being watched")
                first = self.probe.read()
                self._add(first)
                for key in keys:
                    self._windows[key] = PeakWindow(before=first, peak=list(first))
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="tst-memory-sampler", daemon=True)
                self._thread.start()
        return first

    def close(self, key: str) -> tuple[PeakWindow, list[DeviceMemory]]:
        """Close the window `key`: (the window, the last reading, which its peak includes)."""
        with self._control:
            with self._lock:
                if key not in self._windows:
                    raise KeyError(f"memory of {key} is not being watched (never started, or ended already)")
                last = self.probe.read()
                self._add(last)
                window = self._windows.pop(key)
            if not self._windows:
                self._join()
        return window, last

    def stop(self) -> None:
        """End the thread; windows still open get no further samples."""
        with self._control:
            self._join()

    def _join(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                try:
                    reading = self.probe.read()
                except Exception as error:  # a failed read must not kill the fold; the gap is logged
                    logger.warning("memory sample failed: %s", error)
                    continue
                self._add(reading)

    def _add(self, reading: list[DeviceMemory]) -> None:
        for window in self._windows.values():
            window.add(reading)


def higher(old: DeviceMemory, new: DeviceMemory) -> DeviceMemory:
    process = [value for value in (old.process_mib, new.process_mib) if value is not None]
    return old.model_copy(
        update={"used_mib": max(old.used_mib, new.used_mib), "process_mib": max(process) if process else None}
    )


class MemoryReport(BaseModel):
    """Everything a monitor read during one run."""

    source: MemorySource
    note: str
    devices: list[str]
    interval_s: float
    before_run: list[DeviceMemory]
    folds: dict[str, FoldMemory]

    def check(self, tolerance_mib: float) -> MemoryCheck:
        return check_memory(self.folds, tolerance_mib, self.source)


class MemoryMonitor(FoldObserver):
    """A FoldObserver recording memory before, during (peak) and after each fold's clean-up.

    Each fold is its own window, keyed by the fold: folds that overlap (Ray workers) each get
    their own `before` reading and peak, whatever order they start and end in. The folds of one
    training pass share one `before` reading, taken when the pass starts, and are tagged with it.
    """

    def __init__(self, probe: MemoryProbe | None = None, interval_s: float = DEFAULT_INTERVAL_S):
        self.probe = probe if probe is not None else open_probe()
        self.interval_s = interval_s
        self.before_run = self.probe.read()
        self.folds: dict[str, FoldMemory] = {}
        self._sampler = PeakSampler(self.probe, interval_s)
        self._passes: dict[str, str] = {}  # fold key -> key of its pass's first fold

    @property
    def source(self) -> MemorySource:
        return self.probe.source

    def begin(self, *keys: str) -> None:
        """Start watching folds (or any units of work named by `keys`), from one reading."""
        self._sampler.open(keys)

    def end(self, key: str) -> FoldMemory:
        """Stop watching `key`: the reading after clean-up, with the peak since its `begin`."""
        window, after = self._sampler.close(key)
        memory = FoldMemory(
            source=self.probe.source,
            before=window.before,
            peak=window.peak,
            after_cleanup=after,
            interval_s=self.interval_s,
            samples=window.samples,
            training_pass=self._passes.pop(key, None),
        )
        self.folds[key] = memory
        return memory

    def pass_started(self, specs: Sequence[FoldSpec]) -> None:
        keys = [spec.key for spec in specs]
        self.begin(*keys)
        self._passes.update(dict.fromkeys(keys, keys[0]))

    def fold_started(self, spec: FoldSpec) -> None:
        if spec.key not in self._passes:  # a fold reported without its pass: a pass of its own
            self.begin(spec.key)

    def fold_finished(self, spec: FoldSpec) -> FoldMemory:
        return self.end(spec.key)

    def report(self) -> MemoryReport:
        return MemoryReport(
            source=self.probe.source,
            note=self.probe.note,
            devices=self.probe.devices,
            interval_s=self.interval_s,
            before_run=self.before_run,
            folds=dict(self.folds),
        )

    def close(self) -> None:
        self._sampler.stop()
        self.probe.close()

    def __enter__(self) -> MemoryMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class MemoryRow(BaseModel):
    fold: str
    device: str
    baseline_mib: float
    before_mib: float
    peak_mib: float
    after_mib: float
    process_after_mib: float | None
    growth_mib: float
    allowed_mib: float
    ok: bool


class MemoryCheck(BaseModel):
    """The regression check's verdict, with one row per fold and device."""

    source: MemorySource
    subject: str = "fold"  # what each row's label names: a fold, or a test using a shared predictor
    tolerance_mib: float
    #: what the first training pass may keep for good (one-time warm-up)
    warmup_mib: float = DEFAULT_WARMUP_MIB
    #: training passes compared; with one, only the warm-up allowance was checked
    passes: int = 0
    ok: bool
    worst_growth_mib: float
    rows: list[MemoryRow]

    def table(self) -> str:
        return memory_table(self.rows, self.tolerance_mib, self.subject)

    def message(self) -> str:
        failed_rows = [row for row in self.rows if not row.ok]
        failed = sorted({row.fold for row in failed_rows})
        worst_failed = max((row.growth_mib for row in failed_rows), default=self.worst_growth_mib)
        unit = "GPU memory (NVML)" if self.source == "nvml" else "process RSS (no NVML)"
        verdict = (
            f"{unit} back within {self.tolerance_mib:g} MiB of the steady baseline after every"
            f" {self.subject}'s clean-up (the first training pass may keep its one-time warm-up)"
            if self.ok
            else f"{unit} NOT released: after clean-up of {self.subject}(s) {', '.join(failed)} it stayed"
            f" up to {worst_failed:+.0f} MiB above its baseline"
            f" (allowed: {self.tolerance_mib:g} MiB, the first training pass its one-time warm-up)"
        )
        return f"{verdict}{self.blind_spot()}\n{self.table()}"

    def blind_spot(self) -> str:
        """What a single training pass cannot show: a leak within the warm-up allowance."""
        if self.passes != 1 or len({row.fold for row in self.rows}) < 2:
            return ""
        return (
            f"; all {self.subject}s trained in one pass, so only the warm-up allowance"
            f" ({self.warmup_mib:g} MiB) was checked: a smaller leak looks like warm-up (more passes:"
            " --trainer-option folds_per_pass=N)"
        )


class MemoryNotReleased(AssertionError):
    """A fold left more memory in use than the tolerance allows."""


def check_memory(
    folds: Mapping[str, FoldMemory],
    tolerance_mib: float,
    source: MemorySource | None = None,
    subject: str = "fold",
    warmup_mib: float = DEFAULT_WARMUP_MIB,
) -> MemoryCheck:
    """After each clean-up, memory must be back where the steady state starts.

    Folds trained in one pass (`FoldMemory.training_pass`; a fold without one is a pass of its own)
    start together, so whatever any of them keeps is already there when the first of them ends: the
    unit is the pass. Every fold of the first pass is compared with the memory before that pass,
    allowing `warmup_mib` (at least the tolerance) of one-time warm-up; every later fold with the
    memory after the first pass's last clean-up, allowing `tolerance_mib`. With a single pass only
    the warm-up allowance applies (`passes` says so).
    """
    if not folds:
        raise ValueError("no fold memory was recorded: nothing to check")
    passes = {key: memory.training_pass or key for key, memory in folds.items()}
    first_key = next(iter(folds))
    first_pass = [key for key in folds if passes[key] == passes[first_key]]
    start = by_device(folds[first_key].before)
    steady = by_device(folds[first_pass[-1]].after_cleanup)
    warmup_allowed = max(warmup_mib, tolerance_mib)
    rows = []
    for key, memory in folds.items():
        baseline, allowed = (start, warmup_allowed) if key in first_pass else (steady, tolerance_mib)
        peaks, befores = by_device(memory.peak), by_device(memory.before)
        for after in memory.after_cleanup:
            growth = after.used_mib - baseline[after.device]
            rows.append(
                MemoryRow(
                    fold=key,
                    device=after.device,
                    baseline_mib=baseline[after.device],
                    before_mib=befores[after.device],
                    peak_mib=peaks[after.device],
                    after_mib=after.used_mib,
                    process_after_mib=after.process_mib,
                    growth_mib=growth,
                    allowed_mib=allowed,
                    ok=growth <= allowed,
                )
            )
    return MemoryCheck(
        source=source or folds[first_key].source,
        subject=subject,
        tolerance_mib=tolerance_mib,
        warmup_mib=warmup_allowed,
        passes=len(set(passes.values())),
        ok=all(row.ok for row in rows),
        worst_growth_mib=max(row.growth_mib for row in rows),
        rows=rows,
    )


def by_device(readings: Sequence[DeviceMemory]) -> dict[str, float]:
    return {reading.device: reading.used_mib for reading in readings}


def assert_memory_released(
    report: MemoryReport | Mapping[str, FoldMemory], tolerance_mib: float
) -> MemoryCheck:
    """The check as an assertion: raises MemoryNotReleased with the per-fold table."""
    check = (
        report.check(tolerance_mib)
        if isinstance(report, MemoryReport)
        else check_memory(report, tolerance_mib)
    )
    if not check.ok:
        raise MemoryNotReleased(check.message())
    return check


def memory_table(rows: Sequence[MemoryRow], tolerance_mib: float, subject: str = "fold") -> str:
    """A Markdown table (MiB), ready to paste into a note."""
    header = (
        f"| {subject} | device | baseline | before | peak | after clean-up | after - baseline | this process"
        " (after) | allowed | released |"
    )
    lines = [header, "|" + "---|" * 10]
    for row in rows:
        process = f"{row.process_after_mib:.0f}" if row.process_after_mib is not None else "not listed"
        lines.append(
            f"| {row.fold} | {row.device} | {row.baseline_mib:.0f} | {row.before_mib:.0f}"
            f" | {row.peak_mib:.0f} | {row.after_mib:.0f} | {row.growth_mib:+.0f} | {process}"
            f" | {row.allowed_mib:g} | {'yes' if row.ok else 'NO'} |"
        )
    return "\n".join(lines)


def describe_source(report: MemoryReport) -> str:
    before = ", ".join(
        f"{r.device} {r.used_mib:.0f}" + (f"/{r.total_mib:.0f}" if r.total_mib else "") + " MiB"
        for r in report.before_run
    )
    return f"memory source: {report.source} ({report.note}); before the run: {before}"
