"""Iterative Bias Pruning on the synthetic shortcut set, against random pruning of the same counts.

Wall time goes through pytest-benchmark; both trajectories (score, size and removal precision
per round) go into extra_info, so the saved benchmark JSON carries the curves. `rf` is TsT-RF
(seconds); `tiny-llm` is the LoRA TsT on the tiny model (minutes on CPU).
"""

from typing import TypedDict

import pytest

from tst_bench.config import RunConfig
from tst_bench.ibp import PruneConfig, run_prune


class Engines(TypedDict):
    backend: str
    trainer: str


BACKENDS: dict[str, Engines] = {
    "rf": {"backend": "rf", "trainer": "rf"},
    "tiny-llm": {"backend": "hf", "trainer": "peft"},
}
#: three diagnoses per trajectory (all rows, 20% and 40% removed), for IBP and for random pruning
DATASET, BUDGET, BATCH = "synthetic:shortcut?rows=300", "40%", "20%"


def curve(trajectory):
    return [
        {
            "round": entry.round,
            "rows": entry.n_rows,
            "removed": entry.removed_before,
            "score": entry.score,
            "score_std": entry.score_std,
            "precision": entry.precision,
            "flag_auroc": entry.flag_auroc,
        }
        for entry in trajectory.rounds
    ]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_ibp_against_random_pruning(benchmark, tmp_path, backend):
    def prune_once():
        run = RunConfig(
            dataset=DATASET,
            folds=5,
            seed=0,
            zero_shot=False,
            out=tmp_path / "prune",
            **BACKENDS[backend],
        )
        return run_prune(PruneConfig(run=run, budget=BUDGET, batch_size=BATCH), overwrite=True)

    result = benchmark.pedantic(prune_once, rounds=1, iterations=1)
    ibp, control = result.ibp, result.control
    benchmark.extra_info.update(
        {
            "dataset": ibp.dataset,
            "backend": backend,
            "ibp": curve(ibp),
            "random": curve(control),
            "ibp_final_score": ibp.rounds[-1].score,
            "random_final_score": control.rounds[-1].score,
            "chance": ibp.rounds[0].chance,
            "first_round_precision": ibp.rounds[0].precision,
            "flagged_share": ibp.rounds[0].flag_rows / ibp.rounds[0].n_rows,
        }
    )
    assert ibp.removal_counts == control.removal_counts
