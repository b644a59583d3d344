"""Groups of folds as the executor's unit of dispatch, with the peft trainer training folds together.

With `fold_batching=true` the peft trainer trains every fold it is handed in one pass, so the
executor hands each worker one contiguous group, streams the results fold by fold, and reruns a
dead worker's whole group elsewhere (a replacement is started in its place). Groups trained
together score like folds trained one by one, up to float summation order; the same groups
trained again give the same bytes.
"""

import re

import pytest

from tst_bench.engine import run_tst

from .ray_support import (
    FOLDS,
    TRAINER_OPTIONS,
    RecordingObserver,
    assert_close_run,
    assert_same_run,
    fold_workers,
    make_config,
    run_killing_a_worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

KEYS = [f"r0_f{fold}" for fold in range(FOLDS)]
FIRST_HALF, SECOND_HALF = KEYS[: FOLDS // 2], KEYS[FOLDS // 2 :]
TOGETHER = {"executor": "ray", "workers": 2, "trainer_options": {**TRAINER_OPTIONS, "fold_batching": True}}


@pytest.fixture(scope="module")
def grouped_run(ray_cluster, tmp_path_factory):
    """The small TsT on two workers, each training its group of folds together."""
    observer = RecordingObserver()
    out = tmp_path_factory.mktemp("grouped") / "run"
    run_tst(make_config(out, **TOGETHER), [observer], progress=False)
    return out, observer


def workers_of(out, keys) -> set[str]:
    workers = fold_workers(out)
    return {workers[key] for key in keys}


def test_each_worker_gets_one_group_that_scores_like_folds_trained_alone(grouped_run, sequential_run):
    out, observer = grouped_run
    first, second = workers_of(out, FIRST_HALF), workers_of(out, SECOND_HALF)
    assert len(first) == len(second) == 1 and first != second  # two groups of three folds
    observer.assert_each_fold_started_then_finished(KEYS)  # results reported fold by fold
    assert_close_run(out, sequential_run)


def test_a_worker_killed_mid_group_has_its_whole_group_rerun(ray_cluster, grouped_run, tmp_path, caplog):
    out = tmp_path / "run"
    killed, log = run_killing_a_worker(ray_cluster, out, caplog, **TOGETHER)
    match = re.search(rf"pid {killed}[^)]*\) died during folds ((?:r0_f\d(?:, )?)+)", log)
    assert match, log
    group = match.group(1).split(", ")
    assert group in (FIRST_HALF, SECOND_HALF)
    rerun_by = workers_of(out, group)
    assert len(rerun_by) == 1 and f"pid {killed}" not in next(iter(rerun_by))  # rerun whole, elsewhere
    assert_same_run(out, grouped_run[0])
