"""TsT-RF speed and score: a 5-fold Random-Forest TsT at the size of a real benchmark split.

1,350 rows matches the Video-MME blind dev file; extra_info keeps the score, baselines and the
top feature importances so a report can show what the forest used.
"""

import pytest

from tst_bench.config import RunConfig
from tst_bench.engine import run_tst


@pytest.mark.parametrize("rows", [600, 1350])
def test_tst_rf_five_folds(benchmark, tmp_path, rows):
    def run_once():
        config = RunConfig(
            dataset=f"synthetic:shortcut?rows={rows}",
            backend="rf",
            trainer="rf",
            zero_shot=False,
            folds=5,
            seed=0,
            out=tmp_path / "run",
        )
        return run_tst(config, overwrite=True, progress=False)

    result = benchmark.pedantic(run_once, rounds=1, iterations=1).result
    top = dict(list((result.feature_importances or {}).items())[:10])
    benchmark.extra_info.update(
        {
            "rows": rows,
            "score": result.score,
            "baselines": result.baselines.model_dump(),
            "fold_seconds": [fold.timings.total_s for fold in result.folds],
            "fold_train_seconds": [fold.timings.train_s for fold in result.folds],
            "top_features": top,
        }
    )
    assert top
