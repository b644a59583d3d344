"""Accuracy: a k-fold TsT for every dataset x model x backend x trainer of the session's options.

With no options on a CPU machine: the tiny model on the synthetic shortcut and control sets. The
wall time goes through pytest-benchmark (one round: a TsT is long); the TsT score, baselines,
per-fold scores, timings and memory go into extra_info["tst_result"] (see tst_bench.bench.recording).
"""

import pytest

from tst_bench.datasets import parse_synthetic_spec
from tst_bench.models import resolve_model

pytestmark = pytest.mark.slow


def test_tst_accuracy(
    benchmark, tst_runner, tst_dataset_spec, tst_model_name, tst_backend_name, tst_trainer_name
):
    outcome = benchmark.pedantic(
        tst_runner,
        kwargs={
            "dataset": tst_dataset_spec,
            "model": tst_model_name,
            "backend": tst_backend_name,
            "trainer": tst_trainer_name,
        },
        rounds=1,
        iterations=1,
    )
    result = outcome.result
    assert [fold.fold for fold in result.folds] == list(range(tst_runner.settings.folds))
    assert all(0.0 <= fold.score <= 1.0 and fold.n_test > 0 for fold in result.folds)
    check_synthetic_expectation(tst_dataset_spec, tst_model_name, result)


def check_synthetic_expectation(dataset: str, model: str, result) -> None:
    """Where the answer is known: the control set is not learnable by anyone, and the tiny model
    (the recipe verified to learn planted cues) must find the shortcut."""
    if not dataset.startswith("synthetic:"):
        return
    kind = parse_synthetic_spec(dataset).kind
    low, _ = result.ci95
    floor = max(result.baselines.majority, result.baselines.chance)
    if kind == "control":
        assert low <= floor + 0.02, (
            f"the control set has no learnable signal, yet TsT scored {result.score:.3f} (95% CI from"
            f" {low:.3f}) against a majority/chance floor of {floor:.3f}: test rows leak into training?"
        )
    elif kind == "shortcut" and resolve_model(model).recipe == "tiny":
        assert low > floor, (
            f"the tiny model should learn the planted shortcut: TsT {result.score:.3f}"
            f" (95% CI from {low:.3f})"
            f" does not beat the majority/chance floor {floor:.3f}"
        )
