"""The TsT runner behind the `tst_runner` fixture: one k-fold run with the memory monitor attached.

Every run is fresh (the run directory is overwritten: a benchmark measures work, not a resume) and
is recorded three ways: pytest-benchmark's extra_info when the test uses `benchmark`, a
tst_record.json under --tst-results, and a line plus a per-fold memory table in the terminal summary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..engine import TsTRun, run_tst
from ..hardware import GpuDevice, describe_hardware
from ..leak import LeakInjector
from ..memory import (
    MemoryCheck,
    MemoryMonitor,
    MemoryReport,
    assert_memory_released,
    describe_source,
    open_probe,
)
from ..schemas import TsTResult
from .recording import RunSummary, SessionRecords, headline, safe_name, write_record
from .settings import TsTSettings, run_config

logger = logging.getLogger(__name__)


@dataclass
class TsTOutcome:
    config: RunConfig
    run: TsTRun
    memory: MemoryReport
    seconds: float
    leak_mib: float
    tolerance_mib: float

    @property
    def result(self) -> TsTResult:
        return self.run.result

    def memory_check(self, tolerance_mib: float | None = None) -> MemoryCheck:
        return self.memory.check(self.tolerance_mib if tolerance_mib is None else tolerance_mib)

    def assert_memory_released(self, tolerance_mib: float | None = None) -> MemoryCheck:
        """Fails with the per-fold table when a fold left memory above the baseline + tolerance."""
        return assert_memory_released(
            self.memory, self.tolerance_mib if tolerance_mib is None else tolerance_mib
        )

    def record(self, hardware: dict[str, Any]) -> dict[str, Any]:
        return {
            "tst_result": self.result.model_dump(mode="json"),
            "tst_memory": self.memory.model_dump(mode="json"),
            "tst_memory_check": self.memory_check().model_dump(mode="json"),
            "tst_hardware": hardware,
            "tst_config": {**self.config.to_dict(), "inject_leak_mib": self.leak_mib},
            "tst_run_dir": str(self.config.out),  # the report reads the per-sample results there
        }


class TsTRunner:
    """Call it to run a TsT: `tst_runner(dataset=..., model=..., folds=3, executor="ray", workers=2)`.

    Unset arguments come from the session's options (the first dataset/model/backend/trainer).
    """

    def __init__(
        self,
        settings: TsTSettings,
        gpus: Sequence[GpuDevice],
        nodeid: str,
        workdir: Path,
        records: SessionRecords,
        extra_info: Callable[[], dict[str, Any] | None] = lambda: None,
    ):
        self.settings = settings
        self.gpus = list(gpus)
        self.nodeid = nodeid
        self.workdir = workdir
        self.records = records
        self._extra_info = extra_info
        self.outcomes: list[TsTOutcome] = []

    def config(self, **overrides: Any) -> RunConfig:
        return run_config(self.settings, **overrides)

    def run_dir(self) -> Path:
        root = self.settings.results / safe_name(self.nodeid) if self.settings.results else self.workdir
        return root / f"run{len(self.outcomes)}"

    def __call__(self, leak_mib: float | None = None, **overrides: Any) -> TsTOutcome:
        leak_mib = self.settings.inject_leak if leak_mib is None else leak_mib
        config = self.config(**overrides)
        config = replace(config, out=self.run_dir())
        leak = LeakInjector(leak_mib, config.device) if leak_mib else None
        monitor = MemoryMonitor(open_probe(self.gpus))
        observers = [monitor, leak] if leak else [monitor]  # the monitor reads "before" ahead of the leak
        try:
            started = time.perf_counter()
            run = run_tst(config, observers=observers, overwrite=True, progress=False)
            seconds = time.perf_counter() - started
            report = monitor.report()
        finally:
            monitor.close()
            if leak:
                leak.release()
        outcome = TsTOutcome(config, run, report, seconds, leak_mib, self.settings.memory_tolerance_mib)
        self.outcomes.append(outcome)
        self._record(outcome)
        return outcome

    def _record(self, outcome: TsTOutcome) -> None:
        record = outcome.record(describe_hardware())
        extra_info = self._extra_info()
        if extra_info is not None:
            extra_info.update(record)
        if self.settings.results:
            path = write_record(Path(outcome.config.out), {"nodeid": self.nodeid, **record})
            logger.info("recorded %s", path)
        check = outcome.memory_check()
        lines = describe_source(outcome.memory)
        if outcome.leak_mib:
            lines += f"\ndeliberate leak: {outcome.leak_mib:g} MiB kept alive per fold"
        self.records.runs.append(
            RunSummary(
                nodeid=self.nodeid,
                headline=headline(self.nodeid, outcome.result, outcome.seconds),
                memory_lines=f"{lines}\n{check.message()}",
                memory_ok=check.ok,
            )
        )
