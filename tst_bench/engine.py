"""The TsT fold loop: validate, plan folds, run what is missing, persist, summarise.

Everything that can be wrong with the input is checked before the run directory is touched, so a
bad input leaves nothing behind. Each finished fold is on disk before the next starts; a rerun with
the same configuration picks up where the last one stopped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .backends import build_trainable, fit_to_backend
from .cluster.connection import ClusterOptions
from .config import RunConfig
from .datasets import Dataset, load_dataset
from .errors import InputError
from .evaluator import FoldObserver, describe_events
from .executors import check_executor_options, make_executor
from .folds import FoldSpec, make_fold_plan
from .memory import MemoryCheck, MemoryReport, assert_memory_released
from .models import ModelSource, resolve_model
from .models.options import check_device
from .progress import ProgressBar
from .registry import backend_spec, trainer_spec
from .results import summarize
from .schemas import FoldResult, RunTimings, SampleResult, TsTResult
from .store import RunStore, check_output_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TsTRun:
    """A finished run in memory: result.json's TsTResult, the samples, the folds, their directory.

    `seconds` is the whole `run_tst` call (validation and executor start included). `memory` is
    what a memory monitor read during the run, where one watched it (the pytest runner's does), and
    `memory_tolerance_mib` the default tolerance of its clean-up check.
    """

    config: RunConfig
    result: TsTResult
    samples: list[SampleResult]
    folds: list[FoldResult]
    store: RunStore
    seconds: float
    memory: MemoryReport | None = None
    memory_tolerance_mib: float | None = None

    def memory_check(self, tolerance_mib: float | None = None) -> MemoryCheck:
        return self._memory().check(self._tolerance(tolerance_mib))

    def assert_memory_released(self, tolerance_mib: float | None = None) -> MemoryCheck:
        """Fails with the per-fold table when a fold left memory above the baseline + tolerance."""
        return assert_memory_released(self._memory(), self._tolerance(tolerance_mib))

    def _memory(self) -> MemoryReport:
        if self.memory is None:
            raise ValueError("no memory monitor watched this run (run it through the tst_runner fixture)")
        return self.memory

    def _tolerance(self, tolerance_mib: float | None) -> float:
        tolerance = self.memory_tolerance_mib if tolerance_mib is None else tolerance_mib
        if tolerance is None:
            raise ValueError("no memory tolerance: pass tolerance_mib")
        return tolerance


def check_run(config: RunConfig) -> None:
    """Every input check of a run, before anything is written."""
    checked_inputs(config)


def checked_inputs(config: RunConfig) -> tuple[RunConfig, Dataset, list[FoldSpec], ModelSource]:
    """The run as it will happen (`fit_to_backend`), its dataset, fold plan and model, once every
    input check has passed."""
    if config.out is None:
        raise InputError("an output directory (--out) is required")
    check_output_dir(Path(config.out))
    config = fit_to_backend(config)
    dataset = load_dataset(config.dataset, config.limit, config.group_columns, config.row_rules)
    plan = make_fold_plan(dataset.records, config.folds, config.seed, config.repeats)
    source = resolve_model(config.model)
    check_engines(config, source)
    return config, dataset, plan, source


def check_engines(config: RunConfig, source: ModelSource) -> None:
    """The run's backend, trainer and their options, executor and device, checked without loading
    anything (constructors are lazy)."""
    build_trainable(config, source)
    check_executor_options(config)
    if needs_a_device_here(config):
        check_device(config.device)


def needs_a_device_here(config: RunConfig) -> bool:
    """Whether the run puts a model on a device of this machine: not TsT-RF (no neural model),
    not the workers of a Ray cluster joined elsewhere."""
    if not (backend_spec(config.backend).uses_device or trainer_spec(config.trainer).uses_device):
        return False
    uses_ray = config.executor == "ray" or backend_spec(config.backend).pool_of is not None
    return not uses_ray or ClusterOptions(config.ray_address, config.ray_gpus).joined_address is None


def run_tst(
    config: RunConfig,
    observers: Sequence[FoldObserver] = (),
    overwrite: bool = False,
    progress: bool = True,
) -> TsTRun:
    clock = InvocationClock()
    with clock.part("prepare_s"):
        config, dataset, plan, source = checked_inputs(config)
        assert config.out is not None
        store = RunStore.open(
            Path(config.out), config.fingerprint(dataset.fingerprint), config.to_dict(), overwrite
        )
        earlier = store.load_timings()
    pending = [spec for spec in plan if not store.has_fold(spec)]
    done_before = len(plan) - len(pending)
    if done_before:
        logger.info("%d of %d folds already done; running the other %d", done_before, len(plan), len(pending))
    records = dataset.records
    zero_shot = store.load_zero_shot()
    needs_zero_shot = config.zero_shot and zero_shot is None
    worked = bool(pending or needs_zero_shot)
    if worked:
        try:
            with clock.part("start_s"):
                executor = make_executor(config, source, records, store.adapter_dir, observers)
            with executor:
                if needs_zero_shot:
                    logger.info("zero-shot baseline on %d samples", len(records))
                    with clock.part("zero_shot_s"):
                        zero_shot_pass = executor.zero_shot()
                    clock.events = zero_shot_pass.events
                    zero_shot = zero_shot_pass.predictions
                    store.save_zero_shot(zero_shot)
                with clock.part("folds_s"), FoldProgress(len(plan), done_before, enabled=progress) as bar:

                    def on_result(result: FoldResult) -> None:
                        store.save_fold(result)
                        bar.advance(result)

                    executor.run(pending, on_result)
        except BaseException:
            store.save_timings(earlier.plus(clock.timings()))  # the rerun that resumes counts them
            raise
    # a rerun with nothing left to do reports the run as it was (unless it predates the timings)
    timings = earlier.plus(clock.timings()) if worked or not earlier.invocations else earlier
    if worked:
        store.save_timings(timings)
    folds = store.load_folds(plan)
    result, samples = summarize(
        config, dataset.name, records, folds, zero_shot if config.zero_shot else None, timings
    )
    store.write_final(result, samples)
    return TsTRun(config, result, samples, folds, store, seconds=clock.elapsed)


class InvocationClock:
    """Wall seconds of one `run_tst` call, split into the parts RunTimings lists."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.parts: dict[str, float] = {}
        self.events: dict[str, float] = {}

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - began

    def timings(self) -> RunTimings:
        return RunTimings(invocations=1, wall_s=self.elapsed, events=self.events, **self.parts)


class FoldProgress:
    """A progress bar over folds (when wanted) plus one log line per finished fold."""

    def __init__(self, total: int, completed: int, enabled: bool):
        self.total = total
        self.completed = completed
        self._bar = ProgressBar("TsT folds", total, completed, enabled)

    def __enter__(self) -> FoldProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.__exit__(*exc_info)

    def advance(self, result: FoldResult) -> None:
        self.completed += 1
        timings = result.timings
        together = (
            f" (trained with {timings.trained_together - 1} other folds)"
            if timings.trained_together > 1
            else ""
        )
        events = f"; {describe_events(timings.events)}" if timings.events else ""
        logger.info(
            "fold %d/%d (repeat %d, fold %d): score %.3f (majority %.3f), train %.1fs%s, load %.1fs,"
            " score %.1fs%s",
            self.completed,
            self.total,
            result.repeat,
            result.fold,
            result.score,
            result.majority_score,
            timings.train_s,
            together,
            timings.load_s,
            timings.score_s,
            events,
        )
        self._bar.advance()
