"""Paired statistics: the exact McNemar test, the seeded paired bootstrap, and which samples pair."""

from math import comb

import numpy as np
import pytest

from tst_bench.reports.paired import bootstrap_ci95, mcnemar_exact_p, paired_comparison, sample_mismatch
from tst_bench.schemas import SampleResult


def samples(outcomes, target="A", prefix="s"):
    """SampleResults from per-sample scores (1.0 right, 0.0 wrong, anything else graded)."""
    return [
        SampleResult(
            id=f"{prefix}{index}",
            fold=index % 3,
            target=target,
            prediction=target if score >= 1.0 else "B",
            correct=score >= 1.0,
            score=score,
            bias_score=0.5,
        )
        for index, score in enumerate(outcomes)
    ]


@pytest.mark.parametrize(("base_only", "other_only"), [(0, 0), (6, 0), (3, 1), (10, 4), (1, 12), (40, 25)])
def test_mcnemar_is_the_two_sided_binomial_tail_of_the_discordant_split(base_only, other_only):
    n = base_only + other_only
    tail = sum(comb(n, k) for k in range(min(base_only, other_only) + 1)) / 2**n if n else 0.5
    assert mcnemar_exact_p(base_only, other_only) == pytest.approx(min(1.0, 2 * tail), rel=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    differences = np.random.default_rng(5).normal(-0.02, 0.3, size=100)
    first = bootstrap_ci95(differences, 10_000, seed=0)
    assert first == bootstrap_ci95(differences, 10_000, seed=0)
    assert first != bootstrap_ci95(differences, 10_000, seed=1)
    low, high = first
    assert low < differences.mean() < high
    # the normal approximation of the mean's 95% interval, for scale
    half = 1.96 * differences.std(ddof=1) / np.sqrt(len(differences))
    assert abs((high - low) / 2 - half) < 0.01


def test_a_large_consistent_drop_is_significant_and_a_small_mixed_one_is_not():
    base = samples([1.0] * 60 + [0.0] * 40)
    dropped = samples([0.0] * 10 + [1.0] * 50 + [0.0] * 40)
    paired = paired_comparison(base, dropped)
    assert (paired.base_only_right, paired.other_only_right, paired.both_right) == (10, 0, 50)
    assert paired.difference == pytest.approx(-0.10)
    assert paired.significant and paired.mcnemar_p == pytest.approx(2 / 2**10)
    assert paired.ci95[1] < 0 and paired.changed_predictions == 10 and paired.max_bias_change == 0.0

    mixed = samples([0.0] * 3 + [1.0] * 57 + [1.0] + [0.0] * 39)
    paired = paired_comparison(base, mixed)
    assert (paired.base_only_right, paired.other_only_right) == (3, 1)
    assert not paired.significant and paired.mcnemar_p == pytest.approx(0.625)
    assert paired.ci95[0] < 0 < paired.ci95[1]


def test_graded_scores_are_judged_by_the_paired_ci():
    base = samples([0.9] * 50 + [0.5] * 50)
    lower = samples([0.8] * 50 + [0.5] * 50)
    paired = paired_comparison(base, lower)
    assert paired.graded and paired.mcnemar_p == 1.0  # nothing is right or wrong differently
    assert paired.significant and paired.ci95[1] < 0


def test_only_the_same_samples_with_the_same_answers_pair():
    base = samples([1.0, 0.0, 1.0])
    assert sample_mismatch(base, list(reversed(samples([0.0, 0.0, 1.0])))) is None
    other_samples = sample_mismatch(base, samples([1.0, 0.0]) + samples([1.0], prefix="t"))
    assert other_samples is not None
    assert "different samples (1 only in the baseline, 1 only in the other run)" in other_samples
    other_answer = sample_mismatch(base, samples([1.0, 0.0, 1.0], target="C"))
    assert other_answer is not None and "another answer" in other_answer
    with pytest.raises(ValueError, match="samples do not pair"):
        paired_comparison(base, samples([1.0, 0.0]))
