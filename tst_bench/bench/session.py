"""The plugin's state for one pytest session, in one object (as pytest-benchmark's BenchmarkSession).

`TsTSession` owns the resolved settings, every TsT run recorded through `tst_runner`, the speedup
curves, the shared models (ModelCache), the Ray lease and the report. The plugin's hooks and
fixtures delegate to it; it lives in `config.stash[SESSION_KEY]` from `pytest_configure` on.
Models and Ray start on first use, so a session that needs neither stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .recording import RecordedRun, SpeedupRecorder, format_speedup, safe_name, write_record
from .settings import TsTSettings, describe, resolve_settings

if TYPE_CHECKING:
    from .model_cache import ModelCache
    from .ray_runtime import RayRuntime

logger = logging.getLogger(__name__)

SESSION_KEY = pytest.StashKey["TsTSession"]()


class TsTSession:
    def __init__(self, config: pytest.Config, settings: TsTSettings):
        self.config = config
        self.settings = settings
        #: every TsT run through `tst_runner`, in the order they ran
        self.runs: list[RecordedRun] = []
        self.speedup: SpeedupRecorder | None = None
        self.report_files: list[Path] = []
        self.report_error: str | None = None
        self._models: ModelCache | None = None
        self._ray: RayRuntime | None = None

    @classmethod
    def start(cls, config: pytest.Config) -> TsTSession:
        from ..hardware import discover_gpus

        session = cls(config, resolve_settings(config, gpu_count=len(discover_gpus())))
        config.stash[SESSION_KEY] = session
        return session

    @classmethod
    def of(cls, config: pytest.Config) -> TsTSession:
        try:
            return config.stash[SESSION_KEY]
        except KeyError:
            raise pytest.UsageError(
                "the tst-bench pytest plugin is not active in this session (disabled with"
                " -p no:tst_bench?); these benchmarks need it"
            ) from None

    # --- shared resources: started on first use, released by the fixtures' teardown --------

    def models(self) -> ModelCache:
        """The session's predictors and trainers, built once per model."""
        if self._models is None:
            from .model_cache import ModelCache

            self._models = ModelCache(self.settings)
        return self._models

    def close_models(self) -> None:
        if self._models is not None:
            self._models.close()
            self._models = None

    def ray(self) -> RayRuntime:
        """The session's Ray runtime: joined (--tst-ray-address) or a private local one."""
        if self._ray is None:
            from .ray_runtime import start_ray

            self._ray = start_ray(self.settings)
        return self._ray

    def stop_ray(self) -> None:
        if self._ray is not None:
            from .ray_runtime import stop_ray

            stop_ray(self._ray)
            self._ray = None

    def speedup_recorder(self) -> SpeedupRecorder:
        if self.speedup is None:
            from ..hardware import hardware_summary

            self.speedup = SpeedupRecorder(self.settings.speedup_unit, hardware_summary())
        return self.speedup

    # --- recording ---------------------------------------------------------------------

    def run_dir(self, nodeid: str, workdir: Path, index: int) -> Path:
        """Where a test's run number `index` goes: under --tst-results when given, else its tmp_path."""
        root = self.settings.results / safe_name(nodeid) if self.settings.results else workdir
        return root / f"run{index}"

    def record(self, run: RecordedRun, extra_info: dict[str, Any] | None) -> None:
        """Keep a finished run for the report and the summary; a tst_record.json under
        --tst-results; and, when the test uses `benchmark`, its first run goes into the
        benchmark's extra_info (a test's later runs are reported on their own)."""
        self.runs.append(run)
        if extra_info is not None and "tst_result" not in extra_info:
            extra_info.update(run.record)
        if self.settings.results:
            path = write_record(Path(run.run_dir), {"nodeid": run.nodeid, **run.record})
            logger.info("recorded %s", path)

    @property
    def empty(self) -> bool:
        return not (self.runs or self.speedup or self.report_files or self.report_error)

    # --- hooks ---------------------------------------------------------------------------

    def header(self) -> list[str]:
        from ..hardware import hardware_summary, nvml_status

        return [
            describe(self.settings),
            f"tst-bench hardware: {hardware_summary()}; {nvml_status().describe()}",
        ]

    def finish(self, session: pytest.Session) -> None:
        """Write the report of the session's TsT runs (--tst-report); a report that cannot be
        written fails the session."""
        if self.settings.report is None:
            return
        from ..errors import TsTError
        from .report import write_session_report

        benchmarks = getattr(self.config, "_benchmarksession", None)  # pytest-benchmark's session
        try:
            self.report_files = write_session_report(self.config, benchmarks, self.runs, self.settings.report)
        except (TsTError, OSError, ValueError) as error:
            self.report_error = (
                f"report not written to {self.settings.report}: {type(error).__name__}: {error}"
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def display(self, terminalreporter: Any) -> None:
        """The `tst-bench` section of the terminal summary."""
        if self.empty:
            return
        terminalreporter.section("tst-bench")
        if self.report_files:
            terminalreporter.write_line("report: " + ", ".join(str(path) for path in self.report_files))
        if self.report_error:
            terminalreporter.write_line(self.report_error, red=True)
        for run in self.runs:
            for line in run.summary.splitlines():
                terminalreporter.write_line(line)
            terminalreporter.write_line("")
        if self.speedup is not None:
            for executor in self.speedup.seconds:
                terminalreporter.write_line(format_speedup(self.speedup.curve(executor)))


def settings_of(config: pytest.Config) -> TsTSettings:
    """The session's resolved tst-bench options (for a conftest's pytest_generate_tests)."""
    return TsTSession.of(config).settings
