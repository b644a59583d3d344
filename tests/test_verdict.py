"""One verdict per benchmark: the 95% interval (samples + training randomness) and the pooling of
runs whatever their order (the command-line side: tests/test_verdict_cli.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tst_bench.interval import Replicate, score_interval, training_variance
from tst_bench.schemas import Baselines, FoldSummary, FoldTimings, SampleResult, TsTResult
from tst_bench.verdict import RunOfBenchmark, judge, pool_runs


def binary_scores(n: int, p: float, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    scores = np.zeros(n)
    scores[rng.choice(n, size=round(p * n), replace=False)] = 1.0
    return scores.tolist()


def even_replicate(fold_scores, n: int) -> Replicate:
    k = len(fold_scores)
    return Replicate(tuple(fold_scores), tuple(n // k + (i < n % k) for i in range(k)))


def test_folds_that_agree_as_sampling_predicts_leave_the_samples_standard_error():
    """1,350 samples at 0.300: the samples bound the score to about +-2.4 points (the fold-mean t
    interval gave 0.300 [0.244, 0.356] on real Video-MME rows: +-5.6)."""
    scores = binary_scores(1350, 0.3)
    replicate = even_replicate([0.300, 0.300, 0.300], 1350)
    interval = score_interval(scores, [replicate], sample_variance=0.3 * 0.7)
    half = 1.959964 * np.sqrt(0.3 * 0.7 / 1350)
    assert (interval.low, interval.high) == pytest.approx((0.3 - half, 0.3 + half))
    assert interval.training_se == 0 and (interval.replicates, interval.folds) == (1, 3)


def test_training_randomness_widens_the_interval_and_more_runs_do_not_shrink_the_samples_part():
    scores = binary_scores(600, 0.5)
    steady = score_interval(scores, [even_replicate([0.5] * 5, 600)], sample_variance=0.25)
    # one fold's model trained badly: its score lies 0.2 below the others, far beyond sampling
    uneven = score_interval(scores, [even_replicate([0.54, 0.54, 0.54, 0.54, 0.34], 600)], 0.25)
    assert uneven.training_se > 0.02 and uneven.high - uneven.low > steady.high - steady.low + 0.03
    # two runs over the same samples that disagree by 6 points: their spread widens it
    runs = [even_replicate([0.47] * 5, 600), even_replicate([0.53] * 5, 600)]
    assert training_variance(runs, 0.25) == pytest.approx(np.var([0.47, 0.53], ddof=1) / 2)
    pooled = score_interval(scores, runs, sample_variance=0.25)
    assert pooled.training_se == pytest.approx(0.03)
    assert pooled.sample_se == steady.sample_se == pytest.approx(np.sqrt(0.25 / 600))


def fake_result(seed: int, fold_scores, n: int, samples_scores) -> tuple[TsTResult, list[SampleResult]]:
    folds = [
        FoldSummary(
            repeat=0,
            fold=i,
            score=s,
            majority_score=0.26,
            n_train=n - size,
            n_test=size,
            timings=FoldTimings(),
        )
        for i, (s, size) in enumerate(
            zip(fold_scores, even_replicate(fold_scores, n).fold_sizes, strict=True)
        )
    ]
    result = TsTResult(
        metric="accuracy",
        score=float(np.mean(samples_scores)),
        score_std=0.0,
        ci95=(0.0, 1.0),
        baselines=Baselines(zero_shot=None, majority=0.26, chance=0.25),
        n_samples=n,
        n_folds=len(fold_scores),
        n_repeats=1,
        dataset="d",
        model="m",
        backend="rf",
        trainer="rf",
        seed=seed,
        wall_s=1.0,
        folds=folds,
        config={"dataset": "d", "seed": seed},
    )
    samples = [
        SampleResult(
            id=f"q{i:03d}", fold=0, target="A", prediction="A", correct=bool(s), score=s, bias_score=None
        )
        for i, s in enumerate(samples_scores)
    ]
    return result, samples


def test_pooling_is_per_sample_and_does_not_depend_on_the_order_of_the_runs():
    first = fake_result(0, [0.40, 0.30, 0.35], 300, binary_scores(300, 0.35, seed=1))
    second = fake_result(1, [0.30, 0.28, 0.32], 300, binary_scores(300, 0.30, seed=2))
    runs = [RunOfBenchmark("s0", *first), RunOfBenchmark("s1", *second)]
    forward, backward = pool_runs(runs), pool_runs(runs[::-1])
    assert forward == backward
    assert forward.verdict.runs == 2 and forward.pooled == ["s0", "s1"]
    assert forward.verdict.score == pytest.approx((0.35 + 0.30) / 2)
    assert forward.verdict.text.endswith("(2 runs pooled)")
    assert forward.interval is not None and forward.interval.replicates == 2

    again = RunOfBenchmark("s0 again", *first)  # the same run recorded twice counts once
    other = fake_result(2, [0.5, 0.5], 100, binary_scores(100, 0.5))  # another --limit
    bare = RunOfBenchmark("summary only", first[0].model_copy(update={"seed": 9, "config": {"seed": 9}}))
    pooled = pool_runs([*runs, again, RunOfBenchmark("limit", *other), bare])
    assert pooled.pooled == ["s0", "s1"]
    assert dict(pooled.not_pooled) == {
        "s0 again": "the same run as s0",
        "limit": "other samples than the pooled runs",
        "summary only": "no per-sample results",
    }


def test_judge_names_the_floor_and_the_points():
    baselines = Baselines(zero_shot=None, majority=0.27, chance=0.25)
    verdict = judge(0.51, (0.44, 0.58), baselines, runs=3)
    assert (verdict.signal, verdict.floor_name, verdict.floor) == ("signal", "majority", 0.27)
    assert (
        verdict.text
        == "TsT 0.51 [0.44, 0.58] vs majority 0.27: non-visual signal, +24 points (3 runs pooled)"
    )
