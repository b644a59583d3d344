"""The TsT runner behind the `tst_runner` fixture: one k-fold run with the memory monitor attached.

Every run is fresh (the run directory is overwritten: a benchmark measures work, not a resume) and
is recorded by the session (bench/session.py): in the session's report, pytest-benchmark's
extra_info when the test uses `benchmark`, a tst_record.json under --tst-results, and a line plus
a per-fold memory table in the terminal summary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..engine import TsTRun, run_tst
from ..hardware import GpuDevice, describe_hardware
from ..leak import LeakInjector, LeakUnit
from ..memory import MemoryMonitor, describe_source, open_probe
from ..models import resolve_model
from ..sweep.configurations import with_point
from .recording import RecordedRun, headline
from .session import TsTSession
from .settings import run_config

logger = logging.getLogger(__name__)


class TsTRunner:
    """Call it to run a TsT: `tst_runner(dataset=..., model=..., folds=3, executor="ray", workers=2)`.

    Keywords are RunConfig's fields; unset ones come from the session's options (the first
    dataset/model/backend/trainer). `leak_mib` keeps that much memory alive per fold (default
    --tst-inject-leak), or per training pass with `leak_per="pass"`; `measures="memory"|"speedup"`
    marks a run that measures something other than the dataset's score (a leak does too), which the
    report's verdict leaves out.
    """

    def __init__(
        self,
        session: TsTSession,
        gpus: Sequence[GpuDevice],
        nodeid: str,
        name: str,
        workdir: Path,
        extra_info: Callable[[], dict[str, Any] | None] = lambda: None,
        grid_point: dict[str, Any] | None = None,
    ):
        self.session = session
        self.settings = session.settings
        self.gpus = list(gpus)
        self.nodeid = nodeid
        self.name = name
        self.workdir = workdir
        self._extra_info = extra_info
        #: the --tst-grid configuration this test runs; its options replace the run's own
        self.grid_point = grid_point
        self.runs: list[TsTRun] = []

    def config(self, **overrides: Any) -> RunConfig:
        config = run_config(self.settings, **overrides)
        if self.grid_point:
            config = with_point(config, resolve_model(config.model), self.grid_point)
        return config

    def run_dir(self) -> Path:
        return self.session.run_dir(self.nodeid, self.workdir, len(self.runs))

    def __call__(
        self,
        leak_mib: float | None = None,
        leak_per: LeakUnit = "fold",
        measures: str | None = None,
        **overrides: Any,
    ) -> TsTRun:
        leak_mib = self.settings.inject_leak if leak_mib is None else leak_mib
        config = self.config(**overrides)
        config = replace(config, out=self.run_dir())
        leak = LeakInjector(leak_mib, config.device, per=leak_per) if leak_mib else None
        monitor = MemoryMonitor(open_probe(self.gpus))
        observers = [monitor, leak] if leak else [monitor]  # the monitor reads "before" ahead of the leak
        try:
            run = run_tst(config, observers=observers, overwrite=True, progress=False)
            report = monitor.report()
        finally:
            monitor.close()
            if leak:
                leak.release()
        run = replace(run, memory=report, memory_tolerance_mib=self.settings.memory_tolerance_mib)
        self.runs.append(run)
        self._record(run, leak_mib, leak_per, measures or ("memory" if leak_mib else None))
        return run

    def _record(self, run: TsTRun, leak_mib: float, leak_per: LeakUnit, measures: str | None) -> None:
        check = run.memory_check()
        assert run.memory is not None
        lines = [headline(self.nodeid, run.result, run.seconds), describe_source(run.memory)]
        if leak_mib:
            lines.append(f"deliberate leak: {leak_mib:g} MiB kept alive per {leak_per}")
        index = len(self.runs) - 1
        recorded = RecordedRun(
            nodeid=self.nodeid,
            name=self.name if index == 0 else f"{self.name} run{index}",
            record=run_record(run, describe_hardware(), leak_mib, measures),
            summary="\n".join([*lines, check.message()]),
        )
        self.session.record(recorded, self._extra_info())


def run_record(
    run: TsTRun, hardware: dict[str, Any], leak_mib: float, measures: str | None
) -> dict[str, Any]:
    """What a watched run records (see recording.py for the keys)."""
    assert run.memory is not None
    record = {
        "tst_result": run.result.model_dump(mode="json"),
        "tst_memory": run.memory.model_dump(mode="json"),
        "tst_memory_check": run.memory_check().model_dump(mode="json"),
        "tst_hardware": hardware,
        "tst_config": {**run.config.to_dict(), "inject_leak_mib": leak_mib},
        "tst_run_dir": str(run.config.out),  # the report reads the per-sample results there
    }
    if measures:
        record["tst_measures"] = measures
    return record
