"""From fold results to the TsTResult and per-sample SampleResults a run reports.

The score is the mean per-sample score of the held-out predictions (each sample's score averaged
over repeats); its 95% interval and the verdict come from tst_bench/interval.py and verdict.py.
`score_std` is the spread of the fold scores, shown for reference.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from collections.abc import Sequence

from .config import RunConfig
from .interval import replicates_of
from .label_issues import find_wrong_keys
from .metrics import mean_std_ci95, metric_name, score_answer
from .registry import backend_spec
from .schemas import (
    Baselines,
    FoldResult,
    LLMPredictionResult,
    QARecord,
    RunTimings,
    SampleResult,
    TsTResult,
    ZeroShotStatus,
)
from .verdict import judge, mean_and_interval, one_run_variance

CHANCE_SAMPLE = 200
#: How many features result.json lists; per-fold files keep every non-zero importance.
TOP_FEATURES = 50


def chance_score(records: Sequence[QARecord], seed: int = 0) -> float:
    """Expected score of guessing: 1/#options for mc; for num/oe, another sample's answer."""
    rng = random.Random(seed)
    answers: dict[str, list[str]] = defaultdict(list)
    for record in records:
        answers[record.format].append(record.answer)
    scores = []
    for record in records:
        if record.format == "mc":
            scores.append(1.0 / len(record.options))
            continue
        pool = answers[record.format]
        guesses = pool if len(pool) <= CHANCE_SAMPLE else rng.sample(pool, CHANCE_SAMPLE)
        scores.append(statistics.fmean(score_answer(record.format, record.answer, g) for g in guesses))
    return statistics.fmean(scores)


def zero_shot_score(records: Sequence[QARecord], predictions: Sequence[LLMPredictionResult]) -> float:
    by_id = {p.instance_id: p for p in predictions}
    return statistics.fmean(score_answer(r.format, r.answer, by_id[r.id].prediction) for r in records)


def zero_shot_status(config: RunConfig, predictions: Sequence[LLMPredictionResult] | None) -> ZeroShotStatus:
    """Why a result has a zero-shot score or not: the user skipped it, or the backend has none."""
    if predictions:
        return "scored"
    return "skipped" if backend_spec(config.backend).zero_shot else "not applicable"


def summarize(
    config: RunConfig,
    dataset_name: str,
    records: Sequence[QARecord],
    folds: Sequence[FoldResult],
    zero_shot: Sequence[LLMPredictionResult] | None,
    timings: RunTimings,
) -> tuple[TsTResult, list[SampleResult]]:
    _, std, _ = mean_std_ci95([fold.score for fold in folds])
    samples = sample_results(records, folds)
    metric = metric_name({record.format for record in records})
    summaries = [fold.summary() for fold in folds]
    scores = {sample.id: sample.score for sample in samples}
    variance = one_run_variance(samples, metric, statistics.fmean(scores.values()))
    score, interval = mean_and_interval(scores, replicates_of(summaries), variance)
    baselines = Baselines(
        zero_shot=zero_shot_score(records, zero_shot) if zero_shot else None,
        majority=statistics.fmean(fold.majority_score for fold in folds),
        chance=chance_score(records, config.seed),
        zero_shot_status=zero_shot_status(config, zero_shot),
    )
    result = TsTResult(
        metric=metric,
        score=score,
        score_std=std,
        ci95=(interval.low, interval.high),
        baselines=baselines,
        by_group=scores_by_group(samples),
        n_samples=len(records),
        n_folds=config.folds,
        n_repeats=config.repeats,
        dataset=dataset_name,
        model=config.model,
        backend=config.backend,
        trainer=config.trainer,
        seed=config.seed,
        wall_s=timings.wall_s,
        folds=summaries,
        config=config.to_dict(),
        feature_importances=mean_feature_importances(folds),
        timings=timings,
        interval=interval,
        verdict=judge(score, (interval.low, interval.high), baselines),
        label_issues=find_wrong_keys(records, folds),
    )
    return result, samples


def mean_feature_importances(folds: Sequence[FoldResult], top: int = TOP_FEATURES) -> dict[str, float] | None:
    """Each feature's importance averaged over folds (0 where a fold lacks it), largest first."""
    fitted = [fold.feature_importances for fold in folds if fold.feature_importances is not None]
    if not fitted:
        return None
    totals: dict[str, float] = defaultdict(float)
    for importances in fitted:
        for name, value in importances.items():
            totals[name] += value / len(fitted)
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:top]
    return {name: value for name, value in ranked if value > 0}


def sample_results(records: Sequence[QARecord], folds: Sequence[FoldResult]) -> list[SampleResult]:
    """One line per sample: first repeat's fold and prediction, score and s(x) averaged over repeats."""
    by_id = defaultdict(list)
    for fold in folds:
        for sample in fold.samples:
            by_id[sample.id].append(sample)
    results = []
    for record in records:
        predictions = sorted(by_id[record.id], key=lambda sample: sample.repeat)
        first = predictions[0]
        bias = [p.bias_score for p in predictions if p.bias_score is not None]
        results.append(
            SampleResult(
                id=record.id,
                fold=first.fold,
                target=record.answer,
                prediction=first.prediction,
                correct=first.correct,
                score=statistics.fmean(p.score for p in predictions),
                bias_score=statistics.fmean(bias) if bias else None,
                groups=record.groups,
                repeats=len(predictions),
            )
        )
    return results


def scores_by_group(samples: Sequence[SampleResult]) -> dict[str, dict[str, float]]:
    grouped: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sample in samples:
        for column, value in sample.groups.items():
            grouped[column][value].append(sample.score)
    return {
        column: {value: statistics.fmean(scores) for value, scores in sorted(values.items())}
        for column, values in grouped.items()
    }
