"""The TsT fold loop: validate, plan folds, run what is missing, persist, summarise.

Everything that can be wrong with the input is checked before the run directory is touched, so a
bad input leaves nothing behind. Each finished fold is on disk before the next starts; a rerun with
the same configuration picks up where the last one stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .backends import build_trainable, fit_to_backend
from .config import RunConfig
from .datasets import Dataset, load_dataset
from .errors import InputError
from .evaluator import FoldObserver
from .executors import check_executor_options, make_executor
from .folds import FoldSpec, make_fold_plan
from .models import ModelSource, resolve_model
from .results import summarize
from .schemas import FoldResult, SampleResult, TsTResult
from .store import RunStore

logger = logging.getLogger(__name__)


@dataclass
class TsTRun:
    result: TsTResult
    samples: list[SampleResult]
    folds: list[FoldResult]
    store: RunStore
    resumed_folds: int


@dataclass
class PreparedRun:
    config: RunConfig
    dataset: Dataset
    plan: list[FoldSpec]
    source: ModelSource
    fingerprint: str


def prepare_run(config: RunConfig) -> PreparedRun:
    """Every input check, before anything is written."""
    if config.out is None:
        raise InputError("an output directory (--out) is required")
    config = fit_to_backend(config)
    dataset = load_dataset(config.dataset, config.limit, config.group_columns)
    plan = make_fold_plan(dataset.records, config.folds, config.seed, config.repeats)
    source = resolve_model(config.model)
    build_trainable(config, source)  # constructors are lazy: this only validates names and options
    check_executor_options(config)
    return PreparedRun(config, dataset, plan, source, config.fingerprint(dataset.fingerprint))


def run_tst(
    config: RunConfig,
    observers: Sequence[FoldObserver] = (),
    overwrite: bool = False,
    progress: bool = True,
) -> TsTRun:
    prepared = prepare_run(config)
    config = prepared.config
    assert config.out is not None
    store = RunStore.open(Path(config.out), prepared.fingerprint, config.to_dict(), overwrite)
    started = time.perf_counter()
    pending = [spec for spec in prepared.plan if not store.has_fold(spec)]
    done_before = len(prepared.plan) - len(pending)
    if done_before:
        logger.info(
            "%d of %d folds already done; running the other %d", done_before, len(prepared.plan), len(pending)
        )
    records = prepared.dataset.records
    zero_shot = store.load_zero_shot()
    needs_zero_shot = config.zero_shot and zero_shot is None
    if pending or needs_zero_shot:
        with make_executor(config, prepared.source, records, store.adapter_dir, observers) as executor:
            if needs_zero_shot:
                logger.info("zero-shot baseline on %d samples", len(records))
                zero_shot = executor.zero_shot()
                store.save_zero_shot(zero_shot)
            with FoldProgress(len(prepared.plan), done_before, enabled=progress) as bar:

                def on_result(result: FoldResult) -> None:
                    store.save_fold(result)
                    bar.advance(result)

                executor.run(pending, on_result)
    folds = store.load_folds(prepared.plan)
    result, samples = summarize(
        config,
        prepared.dataset.name,
        records,
        folds,
        zero_shot if config.zero_shot else None,
        wall_s=time.perf_counter() - started,
    )
    store.write_final(result, samples)
    return TsTRun(result, samples, folds, store, done_before)


class FoldProgress:
    """A progress bar over folds (when wanted) plus one log line per finished fold."""

    def __init__(self, total: int, completed: int, enabled: bool):
        self.total = total
        self.completed = completed
        self._progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self._task = self._progress.add_task("TsT folds", total=total, completed=completed)

    def __enter__(self) -> FoldProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, result: FoldResult) -> None:
        self.completed += 1
        timings = result.timings
        logger.info(
            "fold %d/%d (repeat %d, fold %d): score %.3f (majority %.3f), train %.1fs, load %.1fs,"
            " score %.1fs",
            self.completed,
            self.total,
            result.repeat,
            result.fold,
            result.score,
            result.majority_score,
            timings.train_s,
            timings.load_s,
            timings.score_s,
        )
        if self._progress is not None:
            self._progress.advance(self._task)
