"""The TsT detects a planted shortcut and does not invent one (tiny model, 600 rows, 5 folds).

These are the core issue's acceptance checks, run for real through the engine: accuracy near the
shortcut ceiling on three seeds with every fold above majority, the control set at majority, and
s(x) separating the rows the shortcut answers from the rest.
"""

import pytest

from tst_bench.config import RunConfig
from tst_bench.datasets.synthetic import SyntheticSpec
from tst_bench.engine import run_tst
from tst_bench.metrics import auroc

pytestmark = pytest.mark.slow


def run_synthetic(kind, seed, out):
    config = RunConfig(dataset=f"synthetic:{kind}?rows=600&seed={seed}", folds=5, seed=seed, out=out)
    return run_tst(config, progress=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shortcut_is_found(seed, tmp_path):
    from tst_bench.datasets import load_dataset

    run = run_synthetic("shortcut", seed, tmp_path / "run")
    ceiling = SyntheticSpec(kind="shortcut").expected_ceiling()
    assert ceiling is not None
    assert abs(run.result.score - ceiling) <= 0.05, (run.result.score, ceiling)
    assert all(fold.score > fold.majority_score for fold in run.result.folds)
    flags = {r.id: r.metadata["shortcut"] for r in load_dataset(run.result.dataset).records}
    bias = [s.bias_score for s in run.samples if s.bias_score is not None]
    assert len(bias) == len(run.samples), "every sample has s(x)"
    area = auroc(bias, [flags[s.id] for s in run.samples])
    assert area >= 0.85, area


def test_control_stays_at_majority(tmp_path):
    run = run_synthetic("control", 0, tmp_path / "run")
    assert abs(run.result.score - run.result.baselines.majority) <= 0.03, run.result
