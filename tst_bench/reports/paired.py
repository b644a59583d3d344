"""Paired statistics of two runs over the same samples: exact McNemar test and a paired bootstrap CI.

Two runs over the same sample ids (and the same answers) are compared sample by sample, which is
far more sensitive than comparing their scores against one run's CI over folds: fold-to-fold
spread mostly reflects which samples landed in which fold, and that is shared by both runs.

McNemar's exact test looks only at the discordant samples (right in one run, wrong in the other):
under "no difference" each is equally likely to go either way, so their split is Binomial(n, 1/2).
The paired bootstrap resamples samples (both runs' outcomes together) and gives a 95% CI of the
mean per-sample score difference; it also covers graded scores (mean relative accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, computed_field

from ..schemas import SampleResult

#: the level at which a paired difference counts as significant (two-sided)
SIGNIFICANCE = 0.05
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
#: resamples drawn per batch, so memory stays bounded on large benchmarks
BOOTSTRAP_BATCH = 500


class PairedComparison(BaseModel):
    """Run `other` against run `base` on the samples both hold (`difference` = other - base)."""

    n_samples: int
    base_score: float
    other_score: float
    difference: float
    ci95: tuple[float, float]
    resamples: int
    seed: int
    both_right: int
    base_only_right: int
    other_only_right: int
    both_wrong: int
    mcnemar_p: float
    #: samples whose predicted answer changed, and the largest change of s(x) (None without s(x))
    changed_predictions: int
    max_bias_change: float | None
    #: per-sample scores other than 0 and 1 (mean relative accuracy): significance from the paired CI
    graded: bool

    @computed_field  # in comparison.json too
    @property
    def significant(self) -> bool:
        """Significant at 95%: McNemar for right/wrong scores, the paired CI excluding 0 for graded ones."""
        if self.graded:
            return self.ci95[0] > 0 or self.ci95[1] < 0
        return self.mcnemar_p < SIGNIFICANCE

    def describe(self) -> str:
        return (
            f"paired over {self.n_samples} samples: {self.difference:+.3f}"
            f" (95% paired bootstrap CI {self.ci95[0]:+.3f} to {self.ci95[1]:+.3f},"
            f" {self.resamples} resamples);"
            f" McNemar exact p = {self.mcnemar_p:.3g} ({self.base_only_right} right only in the baseline,"
            f" {self.other_only_right} right only in this run)"
        )


def sample_mismatch(base: Sequence[SampleResult], other: Sequence[SampleResult]) -> str | None:
    """Why two runs' samples cannot be paired, or None when they can (same ids, same answers)."""
    base_ids = {sample.id: sample.target for sample in base}
    other_ids = {sample.id: sample.target for sample in other}
    if len(base_ids) != len(base) or len(other_ids) != len(other):
        return "a run lists a sample id twice"
    if base_ids.keys() != other_ids.keys():
        only_base, only_other = base_ids.keys() - other_ids.keys(), other_ids.keys() - base_ids.keys()
        return (
            f"the runs hold different samples ({len(only_base)} only in the baseline,"
            f" {len(only_other)} only in the other run)"
        )
    changed = sorted(key for key, target in base_ids.items() if other_ids[key] != target)
    if changed:
        return f"{len(changed)} sample(s) have another answer in the other run (e.g. {changed[0]})"
    return None


def paired_comparison(
    base: Sequence[SampleResult],
    other: Sequence[SampleResult],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedComparison:
    """McNemar's exact test and the paired bootstrap CI; the samples must pair (sample_mismatch)."""
    problem = sample_mismatch(base, other)
    if problem is not None:
        raise ValueError(f"samples do not pair: {problem}")
    by_id = {sample.id: sample for sample in other}
    pairs = [(sample, by_id[sample.id]) for sample in base]
    base_right = np.array([left.correct for left, _ in pairs])
    other_right = np.array([right.correct for _, right in pairs])
    differences = np.array([right.score - left.score for left, right in pairs])
    base_only = int(np.sum(base_right & ~other_right))
    other_only = int(np.sum(~base_right & other_right))
    return PairedComparison(
        n_samples=len(pairs),
        base_score=float(np.mean([left.score for left, _ in pairs])),
        other_score=float(np.mean([right.score for _, right in pairs])),
        difference=float(np.mean(differences)),
        ci95=bootstrap_ci95(differences, resamples, seed),
        resamples=resamples,
        seed=seed,
        both_right=int(np.sum(base_right & other_right)),
        base_only_right=base_only,
        other_only_right=other_only,
        both_wrong=int(np.sum(~base_right & ~other_right)),
        mcnemar_p=mcnemar_exact_p(base_only, other_only),
        changed_predictions=sum(left.prediction != right.prediction for left, right in pairs),
        max_bias_change=max_bias_change(pairs),
        graded=any(sample.score not in (0.0, 1.0) for pair in pairs for sample in pair),
    )


def mcnemar_exact_p(base_only: int, other_only: int) -> float:
    """Two-sided exact McNemar p-value: the discordant split against Binomial(n, 1/2)."""
    from scipy.stats import binomtest  # scipy comes with scikit-learn; imported on use (it is slow)

    discordant = base_only + other_only
    if discordant == 0:
        return 1.0
    return float(binomtest(base_only, discordant, 0.5).pvalue)


def bootstrap_ci95(differences: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile 95% CI of the mean of `differences` over `resamples` seeded resamples."""
    rng = np.random.default_rng(seed)
    n = len(differences)
    means = []
    for start in range(0, resamples, BOOTSTRAP_BATCH):
        size = min(BOOTSTRAP_BATCH, resamples - start)
        means.append(differences[rng.integers(0, n, size=(size, n))].mean(axis=1))
    low, high = np.percentile(np.concatenate(means), [2.5, 97.5])
    return float(low), float(high)


def max_bias_change(pairs: Sequence[tuple[SampleResult, SampleResult]]) -> float | None:
    changes = [
        abs(left.bias_score - right.bias_score)
        for left, right in pairs
        if left.bias_score is not None and right.bias_score is not None
    ]
    return max(changes) if changes else None
