"""Nested cross-validation: an honest score for a sweep.

The best configuration of a grid is chosen on the very folds that score it, so its score is the
maximum of several noisy estimates and overstates the non-visual signal. Nested cross-validation
keeps choice and scoring apart: for each outer fold (the sweep's own fold plan), every
configuration runs an inner k-fold on that fold's training rows only, the configuration with the
best inner score is chosen, and its adapter from the configuration's own run, trained on exactly
those rows, scores the held-out fold. The held-out folds' predictions, each from the configuration
its own inner k-fold chose, make one TsT result: the nested score, its interval and verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..config import RunConfig
from ..folds import FoldSpec
from ..results import summarize
from ..schemas import FoldResult, QARecord, RunTimings, SampleResult, TsTResult


def outer_training_rows(records: Sequence[QARecord], outer: FoldSpec) -> list[QARecord]:
    """The rows an outer fold trains on, in dataset order: the inner k-fold's whole dataset."""
    training = set(outer.train_ids)
    return [record for record in records if record.id in training]


def choose(inner_scores: Mapping[str, float]) -> str:
    """The configuration with the best inner score; a tie goes to the one listed first."""
    return max(inner_scores, key=lambda name: (inner_scores[name], -list(inner_scores).index(name)))


def chosen_folds(
    plan: Sequence[FoldSpec],
    chosen: Mapping[str, str],
    folds_by_configuration: Mapping[str, Sequence[FoldResult]],
) -> list[FoldResult]:
    """Each outer fold's held-out result from the configuration chosen for it (`chosen` by fold key)."""
    selected = []
    for outer in plan:
        runs_folds = folds_by_configuration[chosen[outer.key]]
        selected.append(next(f for f in runs_folds if (f.repeat, f.fold) == (outer.repeat, outer.fold)))
    return selected


def nested_result(
    base: RunConfig,
    dataset_name: str,
    records: Sequence[QARecord],
    folds: Sequence[FoldResult],
    seconds: float,
) -> tuple[TsTResult, list[SampleResult]]:
    """The nested predictions summarised as a run's are: score, interval, baselines and verdict."""
    timings = RunTimings(invocations=1, wall_s=seconds)
    return summarize(base, dataset_name, records, folds, None, timings)
