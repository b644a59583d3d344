"""The one-line answer a benchmark designer looks for: is there non-visual signal, and how much?

The TsT score's 95% interval (tst_bench/interval.py) is set against the floor a blind guesser
reaches without reading the question: the majority answer of the training folds or chance,
whichever is higher. An interval entirely above that floor means the question and option text
alone give answers away (non-visual signal); the distance in points (score x 100) says how much.

A benchmark (dataset, model, backend, trainer) run several times, with other seeds or repeats,
gets one verdict from all its runs (`pool_runs`): per sample, the scores of every run over the same
samples are averaged, and the interval widens by the spread between the runs. The result does not
depend on the order the runs come in.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .config import RunConfig
from .interval import Replicate, replicates_of, score_interval
from .schemas import Baselines, FloorName, SampleResult, ScoreInterval, Signal, TsTResult, Verdict

#: metrics whose per-sample scores are 0 or 1
BINARY_METRICS = ("accuracy", "exact_match")


def judge(score: float, ci95: tuple[float, float], baselines: Baselines, runs: int = 1) -> Verdict:
    """The verdict of a score and its 95% interval against the higher of majority and chance."""
    floors: tuple[tuple[FloorName, float], ...] = (
        ("majority", baselines.majority),
        ("chance", baselines.chance),
    )
    floor_name, floor = max(floors, key=lambda item: item[1])
    low, high = ci95
    points = 100 * (score - floor)
    signal: Signal
    if low > floor:
        signal, finding = "signal", f"non-visual signal, {round(points):+d} points"
    elif high < floor:
        signal, finding = "below", f"no non-visual signal, below {floor_name} ({round(points):+d} points)"
    else:
        signal, finding = (
            "none",
            f"no non-visual signal at 95% ({round(points):+d} points, CI reaches {floor_name})",
        )
    pooled = f" ({runs} runs pooled)" if runs > 1 else ""
    text = f"TsT {score:.2f} [{low:.2f}, {high:.2f}] vs {floor_name} {floor:.2f}: {finding}{pooled}"
    return Verdict(
        signal=signal,
        floor_name=floor_name,
        floor=floor,
        points=points,
        score=score,
        ci95=(low, high),
        runs=runs,
        text=text,
    )


def verdict_of(result: TsTResult) -> Verdict:
    """A result's own verdict (results written before verdicts were recorded get one from their CI)."""
    return result.verdict or judge(result.score, result.ci95, result.baselines)


def mean_and_interval(
    scores: Mapping[str, float], replicates: Sequence[Replicate], sample_variance: float
) -> tuple[float, ScoreInterval]:
    """The mean of per-sample scores (by sample id) and its interval."""
    ordered = [scores[sample_id] for sample_id in sorted(scores)]
    return statistics.fmean(ordered), score_interval(ordered, replicates, sample_variance)


def one_run_variance(samples: Sequence[SampleResult], metric: str, score: float) -> float:
    """The per-sample score variance of one replicate: p (1 - p) for scores of 0 and 1; otherwise
    the variance of the run's scores (averaged over its repeats: then a lower bound)."""
    if metric in BINARY_METRICS:
        return score * (1 - score)
    return float(statistics.pvariance([sample.score for sample in samples]))


@dataclass(frozen=True)
class RunOfBenchmark:
    """One run as pooling sees it: its label (where it came from), result and per-sample results."""

    label: str
    result: TsTResult
    samples: list[SampleResult] | None = None


@dataclass(frozen=True)
class PooledVerdict:
    """A benchmark's verdict from its runs, which of them it pooled and why any other was not."""

    verdict: Verdict
    baselines: Baselines
    metric: str
    pooled: list[str]
    not_pooled: list[tuple[str, str]] = field(default_factory=list)
    interval: ScoreInterval | None = None


def pool_runs(runs: Sequence[RunOfBenchmark]) -> PooledVerdict:
    """One verdict from every run of one benchmark: the runs over the same samples (the largest
    such group) pooled per sample; a run without per-sample results stands alone only when no run
    has them."""
    if not runs:
        raise ValueError("no runs to pool")
    ordered, repeated = distinct_runs(runs)
    groups: dict[frozenset[tuple[str, str]], list[RunOfBenchmark]] = {}
    for run in ordered:
        if run.samples:
            groups.setdefault(frozenset((s.id, s.target) for s in run.samples), []).append(run)
    if not groups:
        best = min(ordered, key=lambda run: (-run.result.n_folds * run.result.n_repeats, run.label))
        skipped = [(run.label, "no per-sample results") for run in ordered if run is not best]
        return PooledVerdict(
            verdict=verdict_of(best.result),
            baselines=best.result.baselines,
            metric=best.result.metric,
            pooled=[best.label],
            not_pooled=repeated + skipped,
            interval=best.result.interval,
        )
    chosen = max(groups.values(), key=lambda group: (replicate_count(group), len(group[0].samples or [])))
    skipped = [
        (run.label, "no per-sample results" if not run.samples else "other samples than the pooled runs")
        for run in ordered
        if run not in chosen
    ]
    return pooled_verdict(chosen, repeated + skipped)


def distinct_runs(runs: Sequence[RunOfBenchmark]) -> tuple[list[RunOfBenchmark], list[tuple[str, str]]]:
    """The runs in label order, each run once (a run directory and the benchmark record of the same
    run are one run: same settings, same fold scores), and the labels of the repeats left out."""
    seen: dict[str, str] = {}
    distinct, repeated = [], []
    for run in sorted(runs, key=lambda run: run.label):
        key = run_identity(run.result)
        if key in seen:
            repeated.append((run.label, f"the same run as {seen[key]}"))
            continue
        seen[key] = run.label
        distinct.append(run)
    return distinct, repeated


def run_identity(result: TsTResult) -> str:
    settings = {k: v for k, v in result.config.items() if k not in RunConfig.NON_RESULT_FIELDS}
    folds = [(fold.repeat, fold.fold, fold.score, fold.n_test) for fold in result.folds]
    return json.dumps([result.seed, settings, folds], sort_keys=True, default=str)


def replicate_count(group: Sequence[RunOfBenchmark]) -> int:
    return sum(run.result.n_repeats for run in group)


def pooled_verdict(group: Sequence[RunOfBenchmark], skipped: list[tuple[str, str]]) -> PooledVerdict:
    """Runs over the same samples: each sample's score averaged over every repeat of every run."""
    totals: dict[str, float] = defaultdict(float)
    repeats: dict[str, int] = defaultdict(int)
    for run in group:
        for sample in run.samples or []:
            totals[sample.id] += sample.score * sample.repeats
            repeats[sample.id] += sample.repeats
    scores = {sample_id: total / repeats[sample_id] for sample_id, total in totals.items()}
    replicates = [replicate for run in group for replicate in replicates_of(run.result.folds)]
    metric = group[0].result.metric
    variance = statistics.fmean(
        one_run_variance(run.samples or [], metric, run.result.score) for run in group
    )
    score, interval = mean_and_interval(scores, replicates, variance)
    baselines = pooled_baselines([run.result for run in group])
    return PooledVerdict(
        verdict=judge(score, (interval.low, interval.high), baselines, runs=len(group)),
        baselines=baselines,
        metric=metric,
        pooled=[run.label for run in group],
        not_pooled=skipped,
        interval=interval,
    )


def pooled_baselines(results: Sequence[TsTResult]) -> Baselines:
    """Majority and chance averaged over the runs (each run's fold split gives its own majority);
    zero-shot where runs measured it."""
    zero_shots = [result.baselines.zero_shot for result in results if result.baselines.zero_shot is not None]
    return Baselines(
        zero_shot=statistics.fmean(zero_shots) if zero_shots else None,
        majority=statistics.fmean(result.baselines.majority for result in results),
        chance=statistics.fmean(result.baselines.chance for result in results),
        zero_shot_status=results[0].baselines.zero_shot_status,
    )
