"""The embedded default: a 5-fold TsT of the tiny model on the synthetic shortcut set.

Wall time goes through pytest-benchmark; accuracy, baselines and per-fold numbers go into
extra_info so the saved benchmark JSON carries them.
"""

import pytest

from tst_bench.config import RunConfig
from tst_bench.engine import run_tst


@pytest.mark.parametrize("dataset", ["synthetic:shortcut", "synthetic:control"])
def test_tst_five_folds_tiny(benchmark, tmp_path, dataset):
    def run_once():
        config = RunConfig(dataset=dataset, model="tiny", folds=5, seed=0, out=tmp_path / "run")
        return run_tst(config, overwrite=True, progress=False)

    run = benchmark.pedantic(run_once, rounds=1, iterations=1)
    result = run.result
    benchmark.extra_info.update(
        {
            "score": result.score,
            "ci95": list(result.ci95),
            "baselines": result.baselines.model_dump(),
            "fold_scores": [fold.score for fold in result.folds],
            "fold_seconds": [fold.timings.total_s for fold in result.folds],
        }
    )
    assert all(fold.n_test > 0 for fold in result.folds)
