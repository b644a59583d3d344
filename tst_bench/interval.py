"""The 95% interval of a TsT score: what the samples and the training randomness leave open.

A TsT score is the mean per-sample score of held-out predictions, pooled over every repeat and run
of the benchmark. It is uncertain for two reasons, and the interval adds both in quadrature:

* **the samples**: the benchmark holds a sample of the questions it stands for. Their standard
  error is the bootstrap's over samples, var / n, computed directly (a bootstrap of a mean
  converges to it): sqrt(p (1 - p) / n) for scores of 0 and 1. It is that of one run's scores, so
  pooling runs does not shrink it: more seeds do not add questions.
* **the training randomness**: each fold's model is one outcome of training (seed, data order,
  which rows it trained on). Its variance is the larger of the fold-to-fold spread beyond what the
  folds' sample sizes explain, averaged over every replicate and divided by the folds of one
  replicate, and, with two or more replicates (runs or repeats over the same samples), the spread of
  their scores divided by their number.

An interval from the spread of the fold means alone (t with k-1 degrees of freedom) rests, with 3
folds, on 3 numbers: wide (t = 4.30) and itself noisy, so verdicts flipped between seeds; pooled
over repeats it shrinks with every fold added although the questions stay the same.
benchmarks/calibration.py measures coverage on synthetic sets whose true blind accuracy is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .schemas import FoldSummary, ScoreInterval

Z95 = 1.959964


@dataclass(frozen=True)
class Replicate:
    """One independently trained pass over the samples (one repeat of one run): its folds' scores
    and sizes."""

    fold_scores: tuple[float, ...]
    fold_sizes: tuple[int, ...]

    @property
    def score(self) -> float:
        return float(np.average(self.fold_scores, weights=self.fold_sizes))

    @property
    def n_samples(self) -> int:
        return sum(self.fold_sizes)


def replicates_of(folds: Sequence[FoldSummary]) -> list[Replicate]:
    """A run's folds as replicates, one per repeat."""
    by_repeat: dict[int, list[FoldSummary]] = {}
    for fold in folds:
        by_repeat.setdefault(fold.repeat, []).append(fold)
    return [
        Replicate(
            tuple(fold.score for fold in sorted(group, key=lambda f: f.fold)),
            tuple(fold.n_test for fold in sorted(group, key=lambda f: f.fold)),
        )
        for _, group in sorted(by_repeat.items())
    ]


def score_interval(
    sample_scores: Sequence[float],
    replicates: Sequence[Replicate],
    sample_variance: float,
) -> ScoreInterval:
    """The 95% interval around the mean of `sample_scores` (each sample's score averaged over the
    replicates); `sample_variance` is the per-sample score variance of one replicate (p (1 - p)
    for scores of 0 and 1)."""
    scores = np.asarray(sample_scores, dtype=float)
    if scores.size == 0 or not replicates:
        raise ValueError("an interval needs samples and at least one replicate")
    center = float(scores.mean())
    sample_se = math.sqrt(sample_variance / scores.size)
    training_se = math.sqrt(training_variance(replicates, sample_variance))
    half = Z95 * math.hypot(sample_se, training_se)
    return ScoreInterval(
        low=max(0.0, center - half),
        high=min(1.0, center + half),
        sample_se=sample_se,
        training_se=training_se,
        replicates=len(replicates),
        folds=sum(len(replicate.fold_scores) for replicate in replicates),
    )


def training_variance(replicates: Sequence[Replicate], sample_variance: float) -> float:
    """The variance the training randomness adds to the pooled score: the larger of the fold and
    the replicate estimate (module docstring)."""
    return max(fold_excess_variance(replicates, sample_variance), replicate_variance(replicates))


def fold_excess_variance(replicates: Sequence[Replicate], sample_variance: float) -> float:
    """Fold-to-fold variance beyond sampling, averaged over the replicates, per fold of one replicate.

    k folds dealt at random from n samples have fold means that vary by about k * var / (n - 1)
    from sampling alone; what the spread shows beyond that is the fold models' own variance. It is
    averaged over the k folds of a replicate but not over replicates: models of other seeds trained
    on the same rows share what those rows taught them."""
    excess, folds = [], []
    for replicate in replicates:
        k, n = len(replicate.fold_scores), replicate.n_samples
        if k < 2 or n < 2:
            continue
        spread = float(np.var(replicate.fold_scores, ddof=1))
        excess.append(max(0.0, spread - sample_variance * k / (n - 1)))
        folds.append(k)
    return float(np.mean(excess)) / float(np.mean(folds)) if excess else 0.0


def replicate_variance(replicates: Sequence[Replicate]) -> float:
    """The variance of the mean of the replicates' scores (0 with a single replicate)."""
    if len(replicates) < 2:
        return 0.0
    scores = [replicate.score for replicate in replicates]
    return float(np.var(scores, ddof=1)) / len(scores)
