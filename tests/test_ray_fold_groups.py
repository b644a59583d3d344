"""Groups of folds as the executor's unit of dispatch, with a trainer that trains folds together.

The cluster's workers run a setup hook that makes the peft trainer declare `trains_folds_together`
(its training stays one fold at a time, so the adapters and scores are the sequential run's): the
executor then hands each worker one contiguous group, streams the results fold by fold, and
reruns a dead worker's whole group elsewhere (a replacement is started in its place).
"""

import re

import pytest

from tst_bench.engine import run_tst

from .ray_support import (
    FOLDS,
    RecordingObserver,
    assert_same_run,
    cluster_training_folds_together,
    fold_workers,
    make_config,
    run_killing_a_worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

KEYS = [f"r0_f{fold}" for fold in range(FOLDS)]
FIRST_HALF, SECOND_HALF = KEYS[: FOLDS // 2], KEYS[FOLDS // 2 :]


@pytest.fixture(scope="module")
def ray_cluster():
    with cluster_training_folds_together(num_gpus=2, num_cpus=2) as tmpdir:
        yield tmpdir


def workers_of(out, keys) -> set[str]:
    workers = fold_workers(out)
    return {workers[key] for key in keys}


def test_each_worker_gets_one_group_and_the_run_equals_the_sequential_one(
    ray_cluster, sequential_run, tmp_path
):
    observer = RecordingObserver()
    out = tmp_path / "run"
    run_tst(make_config(out, executor="ray", workers=2), [observer], progress=False)
    assert_same_run(out, sequential_run)
    first, second = workers_of(out, FIRST_HALF), workers_of(out, SECOND_HALF)
    assert len(first) == len(second) == 1 and first != second  # two groups of three folds
    observer.assert_each_fold_started_then_finished(KEYS)  # results reported fold by fold


def test_a_worker_killed_mid_group_has_its_whole_group_rerun(ray_cluster, sequential_run, tmp_path, caplog):
    out = tmp_path / "run"
    killed, log = run_killing_a_worker(ray_cluster, out, caplog)
    match = re.search(rf"pid {killed}[^)]*\) died during folds ((?:r0_f\d(?:, )?)+)", log)
    assert match, log
    group = match.group(1).split(", ")
    assert group in (FIRST_HALF, SECOND_HALF)
    rerun_by = workers_of(out, group)
    assert len(rerun_by) == 1 and f"pid {killed}" not in next(iter(rerun_by))  # rerun whole, elsewhere
    assert_same_run(out, sequential_run)
