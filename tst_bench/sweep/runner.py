"""A sweep: one ordinary, resumable TsT run per configuration of a grid, the best of them, and the
nested cross-validation score that judges the sweep honestly (sweep/nested.py). The directory holds

    sweep-config.json            the shared run options and the grid; its fingerprint
    configs/<name>/              each configuration's run (result.json, samples.jsonl, folds/ ...)
    inner/<outer fold>/rows.jsonl    the outer fold's training rows: the inner k-fold's dataset
    inner/<outer fold>/<name>/   each configuration's inner run on them
    nested/                      result.json + samples.jsonl of the nested predictions
    sweep.json                   configs, best (optimistic), nested (honest), their gap, the verdict

Every input, each configuration's options included, is checked before anything is written. A rerun
of the same command resumes every run where it stopped; a grid with more values reuses the
configurations already run (the grid is not part of the sweep's fingerprint: each run directory
checks its own).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..datasets import Dataset
from ..datasets.export import write_records
from ..engine import TsTRun, checked_inputs, run_tst
from ..errors import InputError
from ..folds import FoldSpec, make_fold_plan
from ..jsonl import write_json
from ..models import ModelSource
from ..progress import ProgressBar
from ..schemas import QARecord
from ..store import DirectoryKind, RunStore, open_fingerprinted
from .configurations import Configuration, resolve_configurations
from .grid import Options, expand
from .nested import choose, chosen_folds, nested_result, outer_training_rows
from .schema import BestConfiguration, ConfigurationResult, NestedResult, OuterFold, SweepResult

logger = logging.getLogger(__name__)

SWEEP_FORMAT_VERSION = 1
SWEEP_FILE = "sweep.json"
SWEEP_DIRECTORY = DirectoryKind(
    name="sweep",
    marker="sweep-config.json",
    owned=("sweep-config.json", "configs", "inner", "nested", SWEEP_FILE),
    describe=lambda config: f"dataset {(config.get('run') or {}).get('dataset')!r}",
    free_fields=(*RunConfig.NON_RESULT_FIELDS, "grid", "listed"),
)


@dataclass
class SweepConfig:
    """A sweep: the run every configuration shares (`run`, whose `out` is the sweep directory), the
    grid (key -> values) and listed configurations, and the nested cross-validation's inner folds
    (None: as many as the outer folds; 0: no nested cross-validation)."""

    run: RunConfig
    grid: dict[str, list[Any]]
    listed: list[Options] = field(default_factory=list)
    inner_folds: int | None = None

    @property
    def nested(self) -> bool:
        return self.inner_folds != 0

    @property
    def inner_k(self) -> int:
        return self.inner_folds or self.run.folds

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run.to_dict(),
            "grid": self.grid,
            "listed": self.listed,
            "inner_folds": self.inner_k if self.nested else 0,
        }

    def fingerprint(self, dataset_fingerprint: str) -> str:
        data = {
            "run": self.run.fingerprint(dataset_fingerprint),
            "inner_folds": self.inner_k if self.nested else 0,
            "format_version": SWEEP_FORMAT_VERSION,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class SweepPaths:
    root: Path

    def config_dir(self, name: str) -> Path:
        return self.root / "configs" / name

    def inner_root(self, outer: FoldSpec) -> Path:
        return self.root / "inner" / outer.key

    def inner_rows(self, outer: FoldSpec) -> Path:
        return self.inner_root(outer) / "rows.jsonl"

    def inner_dir(self, outer: FoldSpec, name: str) -> Path:
        return self.inner_root(outer) / name

    @property
    def nested_dir(self) -> Path:
        return self.root / "nested"

    @property
    def sweep_file(self) -> Path:
        return self.root / SWEEP_FILE

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


@dataclass
class Sweep:
    """What the checks found: the runs to make, the data and fold plan they share."""

    config: SweepConfig
    base: RunConfig
    dataset: Dataset
    plan: list[FoldSpec]
    source: ModelSource
    configurations: list[Configuration]
    paths: SweepPaths


def check_sweep(config: SweepConfig) -> Sweep:
    """Every input check of a sweep, before anything is written: the shared run's, each
    configuration's options and, for nested cross-validation, every inner fold plan."""
    if config.inner_folds is not None and (config.inner_folds < 0 or config.inner_folds == 1):
        raise InputError(
            f"--inner-folds must be 0 (no nested cross-validation) or at least 2, got {config.inner_folds}"
        )
    base, dataset, plan, source = checked_inputs(config.run)
    configurations = resolve_configurations(base, source, expand(config.grid, config.listed))
    if config.nested and len(configurations) > 1:
        for outer in plan:
            make_fold_plan(outer_training_rows(dataset.records, outer), config.inner_k, base.seed)
    assert base.out is not None
    return Sweep(config, base, dataset, plan, source, configurations, SweepPaths(Path(base.out)))


def run_sweep(config: SweepConfig, overwrite: bool = False, progress: bool = True) -> SweepResult:
    started = time.perf_counter()
    sweep = check_sweep(config)
    paths = sweep.paths
    open_fingerprinted(
        paths.root,
        SWEEP_DIRECTORY,
        config.fingerprint(sweep.dataset.fingerprint),
        config.to_dict(),
        overwrite,
    )
    nested_runs = len(sweep.plan) * len(sweep.configurations) if inner_runs_needed(sweep) else 0
    with SweepProgress(len(sweep.configurations) + nested_runs, enabled=progress) as bar:
        runs = {
            configuration.name: bar.run(
                f"configuration {configuration.name}",
                configuration.with_out(paths.config_dir(configuration.name)),
            )
            for configuration in sweep.configurations
        }
        nested = run_nested(sweep, runs, bar) if config.nested else None
    result = sweep_result(sweep, runs, nested, time.perf_counter() - started)
    write_json(paths.sweep_file, result)
    return result


def inner_runs_needed(sweep: Sweep) -> bool:
    return sweep.config.nested and len(sweep.configurations) > 1


def run_nested(sweep: Sweep, runs: dict[str, TsTRun], bar: SweepProgress) -> NestedResult:
    """Choose per outer fold by the inner k-fold, score the choice on the held-out fold."""
    paths = sweep.paths
    chosen: dict[str, str] = {}
    outer_folds: list[OuterFold] = []
    seconds = 0.0
    for outer in sweep.plan:
        inner_scores: dict[str, float] = {}
        if inner_runs_needed(sweep):
            rows = paths.inner_rows(outer)
            write_records(rows, outer_training_rows(sweep.dataset.records, outer))
            for configuration in sweep.configurations:
                inner = bar.run(
                    f"outer fold {outer.key}, inner {configuration.name}",
                    inner_run_config(sweep, configuration, outer),
                )
                inner_scores[configuration.name] = inner.result.score
                seconds += inner.result.wall_s
        name = choose(inner_scores) if inner_scores else sweep.configurations[0].name
        chosen[outer.key] = name
        held_out = chosen_folds([outer], chosen, {name: runs[name].folds})[0]
        logger.info(
            "outer fold %s: chose %s (inner %s); held-out score %.3f",
            outer.key,
            name,
            ", ".join(f"{key} {value:.3f}" for key, value in inner_scores.items()) or "no choice to make",
            held_out.score,
        )
        outer_folds.append(
            OuterFold(
                repeat=outer.repeat,
                fold=outer.fold,
                chosen=name,
                inner_scores=inner_scores,
                score=held_out.score,
                n_test=held_out.n_test,
                inner_dir=paths.relative(paths.inner_root(outer)) if inner_scores else None,
            )
        )
    folds = chosen_folds(sweep.plan, chosen, {name: run.folds for name, run in runs.items()})
    nested_base = dataclasses.replace(sweep.base, out=paths.nested_dir)
    result, samples = nested_result(nested_base, sweep.dataset.name, sweep.dataset.records, folds, seconds)
    RunStore(paths.nested_dir).write_final(result, samples)
    assert result.verdict is not None
    return NestedResult(
        score=result.score,
        ci95=result.ci95,
        interval=result.interval,
        baselines=result.baselines,
        verdict=result.verdict,
        inner_folds=sweep.config.inner_k,
        outer=outer_folds,
        run_dir=paths.relative(paths.nested_dir),
        seconds=seconds,
    )


def inner_run_config(sweep: Sweep, configuration: Configuration, outer: FoldSpec) -> RunConfig:
    """A configuration's inner k-fold on an outer fold's training rows: one repeat, no zero-shot."""
    paths = sweep.paths
    return configuration.with_out(
        paths.inner_dir(outer, configuration.name),
        dataset=str(paths.inner_rows(outer)),
        limit=None,
        folds=sweep.config.inner_k,
        repeats=1,
        zero_shot=False,
        group_columns=group_columns_of(sweep.dataset.records) or sweep.base.group_columns,
    )


def group_columns_of(records: Sequence[QARecord]) -> tuple[str, ...]:
    """The group columns the records carry, so the inner dataset reads back with the same groups."""
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record.groups))
    return tuple(keys)


def sweep_result(
    sweep: Sweep, runs: dict[str, TsTRun], nested: NestedResult | None, seconds: float
) -> SweepResult:
    paths = sweep.paths
    configs = [
        ConfigurationResult(
            name=configuration.name,
            options=configuration.options,
            trainer_options=configuration.run.trainer_options,
            predictor_options=configuration.run.predictor_options,
            run_dir=paths.relative(paths.config_dir(configuration.name)),
            score=runs[configuration.name].result.score,
            ci95=runs[configuration.name].result.ci95,
            seconds=runs[configuration.name].result.wall_s,
        )
        for configuration in sweep.configurations
    ]
    top = max(configs, key=lambda entry: (entry.score, -configs.index(entry)))
    best = BestConfiguration(
        name=top.name, options=top.options, run_dir=top.run_dir, score=top.score, ci95=top.ci95
    )
    first = runs[configs[0].name].result
    return SweepResult(
        dataset=first.dataset,
        model=first.model,
        backend=first.backend,
        trainer=first.trainer,
        metric=first.metric,
        n_samples=first.n_samples,
        n_folds=first.n_folds,
        n_repeats=first.n_repeats,
        seed=first.seed,
        grid=sweep.config.grid,
        configs=configs,
        best=best,
        nested=nested,
        gap_points=100 * (best.score - nested.score) if nested else None,
        verdict=nested.verdict if nested else None,
        baselines=first.baselines,
        config=sweep.config.to_dict(),
        wall_s=seconds,
    )


class SweepProgress:
    """A progress bar over the sweep's runs (when wanted) plus a log line per finished run; the
    runs themselves log their folds."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.done = 0
        self._bar = ProgressBar("sweep runs", total, enabled=enabled)

    def __enter__(self) -> SweepProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.__exit__(*exc_info)

    def run(self, label: str, config: RunConfig) -> TsTRun:
        with self._step(label):
            run = run_tst(config, progress=False)
        result = run.result
        logger.info(
            "sweep run %d/%d, %s: %s %.3f [%.3f, %.3f] (%.1fs)",
            self.done,
            self.total,
            label,
            result.metric,
            result.score,
            *result.ci95,
            result.wall_s,
        )
        return run

    @contextmanager
    def _step(self, label: str) -> Iterator[None]:
        self._bar.describe(label)
        yield
        self.done += 1
        self._bar.advance()
