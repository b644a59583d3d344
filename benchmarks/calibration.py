"""Is the TsT score's 95% interval calibrated, and how much data gives a verdict that holds?

    python benchmarks/calibration.py coverage [--datasets 30] [--out coverage.json]
    python benchmarks/calibration.py flips [--seeds 10] [--out flips.json]

Both use TsT-RF (`--backend rf --trainer rf`, seconds per run) on the synthetic generator, through
`run_tst` and the report's pooling, as a user runs them.

**Coverage.** A 95% interval should contain the true blind accuracy in 95% of benchmarks. "True"
is what the score estimates: the accuracy the blind model reaches on new questions from the same
source when trained on as many rows as a fold trains on. Known in two ways here:

* in closed form where no model can do better or worse: on the `control` set answers are drawn
  independently of the text, so every blind model's expected accuracy is exactly 1/options;
* from a large held-out sample otherwise: the model trained on fresh training sets of a fold's size
  (`truth_draws` of them, each with its own seed) and scored on fresh rows (`truth_rows` each); the
  mean is the truth, its standard error is reported. For the default shortcut set the forest reaches
  the generator's Bayes-optimal accuracy (closed form, `SyntheticSpec.expected_ceiling`), which the
  table shows beside it.

Each of `datasets` synthetic benchmarks (its own generator seed) is run with `seeds` run seeds;
per interval method, coverage counts the benchmarks whose interval holds the truth. Methods: the
fold-mean t interval used before (`fold t`), the bootstrap over samples alone (`samples`) and the
interval tst-bench reports (`tst-bench`: samples widened by the training spread), for one run and
for `seeds` runs pooled. `signal_share` is how often the interval lies above the verdict's floor:
on the control set (no signal by construction) the rate of false alarms, elsewhere the power.

**Flips.** One benchmark, many run seeds: how often do two seeds disagree on the verdict, by rows,
folds and runs pooled? A verdict that "no longer flips" agrees across >= 95% of seed pairs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tst_bench.backends import build_trainable
from tst_bench.config import RunConfig
from tst_bench.datasets.synthetic import SyntheticKind, SyntheticSpec, generate
from tst_bench.engine import run_tst
from tst_bench.evaluator import LLMEvaluator
from tst_bench.folds import FoldSpec
from tst_bench.interval import Z95, fold_excess_variance, replicate_variance, replicates_of
from tst_bench.metrics import mean_std_ci95
from tst_bench.models import resolve_model
from tst_bench.verdict import RunOfBenchmark, pool_runs

logger = logging.getLogger("calibration")


@dataclass(frozen=True)
class Scenario:
    """A synthetic benchmark family, the fold count, forest settings and how its truth is known."""

    name: str
    kind: SyntheticKind = "shortcut"
    rows: int = 600
    strength: float = 0.9
    fraction: float = 0.4
    folds: int = 5
    trainer_options: dict = field(default_factory=dict)
    #: "closed form" (control: 1/options) or "held-out" (large held-out sample)
    truth: str = "held-out"

    def spec(self, seed: int, rows: int | None = None) -> SyntheticSpec:
        return SyntheticSpec(
            kind=self.kind,
            rows=rows or self.rows,
            seed=seed,
            strength=self.strength,
            shortcut_fraction=self.fraction,
        )

    def dataset(self, seed: int) -> str:
        return (
            f"synthetic:{self.kind}?rows={self.rows}&seed={seed}&strength={self.strength}"
            f"&fraction={self.fraction}"
        )

    def config(self, dataset_seed: int, run_seed: int, out: Path) -> RunConfig:
        return RunConfig(
            dataset=self.dataset(dataset_seed),
            backend="rf",
            trainer="rf",
            folds=self.folds,
            seed=run_seed,
            zero_shot=False,
            out=out,
            trainer_options=dict(self.trainer_options),
        )


COVERAGE_SCENARIOS = (
    Scenario("control, 300 rows, 5 folds", kind="control", rows=300, truth="closed form"),
    Scenario("shortcut, 600 rows, 5 folds"),
    Scenario("shortcut, 300 rows, 3 folds", rows=300, folds=3),
    Scenario("weak shortcut, 300 rows, 3 folds", rows=300, folds=3, strength=0.6, fraction=0.3),
    Scenario(
        "shortcut, 300 rows, 3 folds, unstable 3-tree forest",
        rows=300,
        folds=3,
        trainer_options={"n_estimators": 3, "min_samples_leaf": 1},
    ),
)
#: generator seeds of the truth's training and test sets: far from the benchmarks' own seeds
TRUTH_SEED = 1_000_000


@dataclass(frozen=True)
class Truth:
    value: float
    standard_error: float
    bayes: float | None


def truth_of(scenario: Scenario, draws: int, rows: int, work: Path) -> Truth:
    """The blind model's expected accuracy at a fold's training size (module docstring)."""
    bayes = scenario.spec(0).expected_ceiling()
    if scenario.truth == "closed form":
        assert bayes is not None
        return Truth(bayes, 0.0, bayes)
    train_rows = scenario.rows * (scenario.folds - 1) // scenario.folds
    scores = []
    for draw in range(draws):
        train = generate(scenario.spec(TRUTH_SEED + 2 * draw, train_rows))
        test = generate(scenario.spec(TRUTH_SEED + 2 * draw + 1, rows))
        config = replace(scenario.config(0, draw, work), dataset="held-out")
        evaluator = LLMEvaluator(build_trainable(config, resolve_model(config.model)), train + test, draw)
        spec = FoldSpec(0, 0, 2, tuple(r.id for r in train), tuple(r.id for r in test))
        scores.append(evaluator.evaluate_fold(spec, work / f"truth-{draw}").score)
    return Truth(statistics.fmean(scores), statistics.stdev(scores) / math.sqrt(draws), bayes)


def run_benchmark(scenario: Scenario, dataset_seed: int, run_seeds: Sequence[int], work: Path):
    """The runs of one synthetic benchmark, one per run seed, as the report pools them."""
    runs = []
    for run_seed in run_seeds:
        out = work / f"d{dataset_seed}-s{run_seed}"
        run = run_tst(scenario.config(dataset_seed, run_seed, out), overwrite=True, progress=False)
        runs.append(RunOfBenchmark(f"seed {run_seed}", run.result, run.samples))
    return runs


def intervals(runs: Sequence[RunOfBenchmark]) -> dict[str, tuple[float, float]]:
    """Each method's 95% interval from these runs (pooled where there are several): the one
    tst-bench reports, the fold-mean t interval used before, and the parts tst-bench's is made of:
    the samples alone (`samples`; `pooled samples` lets pooling shrink it, as a bootstrap of the
    pooled per-sample scores would) and with either estimate of training randomness."""
    pooled = pool_runs(runs)
    assert pooled.interval is not None
    replicates = [replicate for run in runs for replicate in replicates_of(run.result.folds)]
    samples = [run.samples or [] for run in runs]
    n = len(samples[0])
    variance = pooled.interval.sample_se**2 * n
    center = pooled.verdict.score
    by_id = [sorted(run_samples, key=lambda sample: sample.id) for run_samples in samples]
    averaged = [
        statistics.fmean(scores) for scores in zip(*([s.score for s in run] for run in by_id), strict=True)
    ]

    def around(variance_of_mean: float) -> tuple[float, float]:
        half = Z95 * math.sqrt(variance_of_mean)
        return center - half, center + half

    return {
        "tst-bench": pooled.verdict.ci95,
        "fold t": mean_std_ci95([fold.score for run in runs for fold in run.result.folds])[2],
        "samples": around(variance / n),
        "pooled samples": around(statistics.pvariance(averaged) / n),
        "+folds": around(variance / n + fold_excess_variance(replicates, variance)),
        "+replicates": around(variance / n + replicate_variance(replicates)),
    }


def coverage(scenarios: Sequence[Scenario], datasets: int, seeds: int, truth_draws: int, truth_rows: int):
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for scenario in scenarios:
            started = time.perf_counter()
            truth = truth_of(scenario, truth_draws, truth_rows, work)
            hits: dict[tuple[str, int], list[bool]] = {}
            widths: dict[tuple[str, int], list[float]] = {}
            signals: dict[tuple[str, int], list[bool]] = {}
            for dataset_seed in range(datasets):
                runs = run_benchmark(scenario, dataset_seed, range(seeds), work)
                for pooled in sorted({1, seeds}):
                    floor = pool_runs(runs[:pooled]).verdict.floor
                    for method, (low, high) in intervals(runs[:pooled]).items():
                        hits.setdefault((method, pooled), []).append(low <= truth.value <= high)
                        widths.setdefault((method, pooled), []).append(high - low)
                        signals.setdefault((method, pooled), []).append(low > floor)
            for (method, pooled), held in hits.items():
                rows.append(
                    {
                        "scenario": scenario.name,
                        "truth": truth.value,
                        "truth_se": truth.standard_error,
                        "bayes": truth.bayes,
                        "method": method,
                        "runs_pooled": pooled,
                        "benchmarks": len(held),
                        "coverage": statistics.fmean(held),
                        "mean_width": statistics.fmean(widths[(method, pooled)]),
                        "width_sd": statistics.pstdev(widths[(method, pooled)]),
                        "signal_share": statistics.fmean(signals[(method, pooled)]),
                    }
                )
            logger.info("%s: %.0f s", scenario.name, time.perf_counter() - started)
            print_coverage([row for row in rows if row["scenario"] == scenario.name])
    return rows


def print_coverage(rows) -> None:
    for row in rows:
        print(
            f"{row['scenario']:<52} truth {row['truth']:.3f} (±{row['truth_se']:.3f})"
            f" {row['method']:<10} runs {row['runs_pooled']}: coverage {row['coverage']:.2f}"
            f" of {row['benchmarks']}, width {row['mean_width']:.3f} (sd {row['width_sd']:.3f}),"
            f" signal in {row['signal_share']:.2f}",
            flush=True,
        )


FLIP_SCENARIO = Scenario("weak shortcut", strength=0.6, fraction=0.3)


def flips(
    rows_grid: Sequence[int], folds_grid: Sequence[int], pooled_grid: Sequence[int], seeds: int
) -> list[dict]:
    """Per rows x folds x runs pooled: the share of seed pairs whose verdicts differ (method:
    tst-bench's interval and the fold t interval), on one benchmark of the flip scenario."""
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for rows, folds in itertools.product(rows_grid, folds_grid):
            scenario = replace(FLIP_SCENARIO, rows=rows, folds=folds)
            runs = run_benchmark(scenario, 0, range(seeds * max(pooled_grid)), work)
            for pooled in pooled_grid:
                groups = [runs[i * pooled : (i + 1) * pooled] for i in range(len(runs) // pooled)]
                verdicts = {"tst-bench": [], "fold t": []}
                for group in groups:
                    result = pool_runs(group)
                    verdicts["tst-bench"].append(result.verdict.signal)
                    low, _ = intervals(group)["fold t"]
                    verdicts["fold t"].append("signal" if low > result.verdict.floor else "not signal")
                for method, signals in verdicts.items():
                    results.append(
                        {
                            "rows": rows,
                            "folds": folds,
                            "runs_pooled": pooled,
                            "method": method,
                            "verdicts": len(signals),
                            "signal_share": signals.count("signal") / len(signals),
                            "flip_rate": flip_rate(signals),
                            "points": statistics.fmean(pool_runs(g).verdict.points for g in groups),
                        }
                    )
                    print(
                        f"rows {rows:5d} folds {folds:2d} runs {pooled} {method:<9}: signal in"
                        f" {signals.count('signal')}/{len(signals)}, flip rate {flip_rate(signals):.2f}",
                        flush=True,
                    )
    return results


def flip_rate(verdicts: Sequence[str]) -> float:
    """The share of pairs of verdicts that differ."""
    pairs = list(itertools.combinations(verdicts, 2))
    return sum(a != b for a, b in pairs) / len(pairs) if pairs else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="study", required=True)
    cover = commands.add_parser("coverage", help="coverage of the 95%% interval on sets of known truth")
    cover.add_argument("--datasets", type=int, default=30, help="synthetic benchmarks per scenario")
    cover.add_argument("--seeds", type=int, default=3, help="run seeds per benchmark (pooled)")
    cover.add_argument("--truth-draws", type=int, default=20)
    cover.add_argument("--truth-rows", type=int, default=4000)
    cover.add_argument("--scenario", action="append", help="only these scenarios (by name)")
    flip = commands.add_parser("flips", help="how often two run seeds disagree on the verdict")
    flip.add_argument("--seeds", type=int, default=10, help="verdicts per cell")
    flip.add_argument("--rows", type=int, nargs="+", default=[150, 300, 600, 1200])
    flip.add_argument("--folds", type=int, nargs="+", default=[3, 5, 10])
    flip.add_argument("--pooled", type=int, nargs="+", default=[1, 2])
    for command in (cover, flip):
        command.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("tst_bench").setLevel(logging.WARNING)
    if args.study == "coverage":
        scenarios = [s for s in COVERAGE_SCENARIOS if not args.scenario or s.name in args.scenario]
        rows = coverage(scenarios, args.datasets, args.seeds, args.truth_draws, args.truth_rows)
    else:
        rows = flips(args.rows, args.folds, args.pooled, args.seeds)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
