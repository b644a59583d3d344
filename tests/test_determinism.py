"""The determinism contract (tst_bench.reports.agreement), like with like.

Same seed and the same torch thread count give the same bytes, whichever executor ran the folds;
across thread counts (and executors) the predictions and scores are the same and s(x) stays
within BIAS_TOLERANCE. A private two-CPU Ray cluster without GPUs gives one fold worker two
threads and two workers one thread each, so both pairings are measured on any machine.
"""

import logging

import pytest

from tst_bench.engine import run_tst
from tst_bench.models.resident import torch_threads
from tst_bench.reports.agreement import BIAS_TOLERANCE, agreement, same_bytes

from .ray_support import make_config, private_local_cluster

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)
FOLDS = 4  # the shared small TsT of tests/ray_support.py, with fewer folds


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run directories by name: sequential at 1 and 2 threads, Ray workers at 1 and 2 threads."""
    root = tmp_path_factory.mktemp("determinism")
    for threads in (1, 2):
        with torch_threads(threads):
            run_tst(make_config(root / f"sequential-{threads}", folds=FOLDS), progress=False)
    with private_local_cluster(num_gpus=0, num_cpus=2), torch_threads(1):
        for workers, threads in ((2, 1), (1, 2)):
            config = make_config(root / f"ray-{threads}", folds=FOLDS, executor="ray", workers=workers)
            run_tst(config, progress=False)
    return {path.name: path for path in root.iterdir()}


@pytest.mark.parametrize("threads", [1, 2])
def test_same_thread_count_gives_the_same_bytes_on_either_executor(runs, threads):
    assert same_bytes(runs[f"sequential-{threads}"], runs[f"ray-{threads}"])
    assert same_bytes(runs[f"sequential-{threads}"], runs[f"ray-{threads}"], "zero_shot.jsonl")


@pytest.mark.parametrize(
    ("base", "other"), [("sequential-1", "sequential-2"), ("sequential-2", "ray-1"), ("ray-2", "ray-1")]
)
def test_other_thread_counts_keep_predictions_and_scores_and_s_x_within_the_tolerance(runs, base, other):
    result = agreement(runs[base], runs[other])
    logger.warning("%s vs %s: %s", base, other, result.describe())
    assert result.holds, result.describe()
    assert 0.0 <= result.max_bias_change <= BIAS_TOLERANCE
