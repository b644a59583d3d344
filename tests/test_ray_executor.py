"""Fold-parallel TsT on Ray (CPU, logical GPUs): same results as sequential, faults, Ctrl-C, resume."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tst_bench.engine import run_tst
from tst_bench.errors import TsTRuntimeError

from .ray_support import (
    FOLDS,
    TRAINER_OPTIONS,
    RecordingObserver,
    assert_same_run,
    cli,
    fold_workers,
    make_config,
    private_ray_tmpdir,
    ray_env,
    run_killing_a_worker,
    run_to_the_end,
    wait_until_gone,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_packed_workers_reproduce_the_sequential_run(ray_cluster, sequential_run, tmp_path):
    observer = RecordingObserver()
    config = make_config(tmp_path / "run", executor="ray", workers=4, workers_per_gpu=2)
    run = run_tst(config, [observer], progress=False)
    assert_same_run(tmp_path / "run", sequential_run)
    workers = set(fold_workers(tmp_path / "run").values())
    assert len(workers) == 4  # six folds, four workers: each got at least one
    gpus = [name.rsplit("gpu ", 1)[1].rstrip(")") for name in workers]
    assert sorted(gpus) == ["0", "0", "1", "1"]  # two workers share each (logical) GPU
    assert run.result.n_folds == FOLDS
    observer.assert_each_fold_started_then_finished([f"r0_f{fold}" for fold in range(FOLDS)])


def test_a_worker_killed_mid_fold_is_replaced_and_the_run_completes(
    ray_cluster, sequential_run, tmp_path, caplog
):
    out = tmp_path / "run"
    killed, log = run_killing_a_worker(ray_cluster, out, caplog)
    match = re.search(rf"pid {killed}[^)]*\) died during fold (r0_f\d)", log)
    assert match, log
    assert f"pid {killed}" not in fold_workers(out)[match.group(1)]  # the fold was run again elsewhere
    assert_same_run(out, sequential_run)


def test_a_fold_that_fails_stops_the_run_naming_fold_and_worker(ray_cluster, tmp_path):
    out = tmp_path / "run"
    options = {**TRAINER_OPTIONS, "target_modules": ["no_such_module"]}
    config = make_config(out, executor="ray", workers=1, trainer_options=options)
    with pytest.raises(
        TsTRuntimeError,
        match=r"ray worker 0 \(node .*pid \d+.*\) failed during fold r0_f0: \w+Error: .*target_modules",
    ):
        run_tst(config, progress=False)
    assert (out / "zero_shot.jsonl").exists()  # what was computed stays for a rerun
    assert not list((out / "folds").glob("*.json"))


# --- the driver as a user runs it: interrupted, killed, resumed ----------------------------


def start_cli(out: Path, tmpdir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        cli(out, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ray_env(tmpdir),
        start_new_session=True,  # its own process group, like a job in a terminal
    )


def wait_for_folds(out: Path, count: int, process: subprocess.Popen, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = len(list((out / "folds").glob("*.json")))
        if done >= count:
            return done
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise TimeoutError(f"fewer than {count} folds after {timeout}s")


def test_interrupted_and_killed_drivers_resume_to_the_same_result(sequential_run, tmp_path):
    tmpdir = private_ray_tmpdir()
    out = tmp_path / "run"
    ray_args = ("--executor", "ray", "--workers", "2", "--gpus", "2")

    first = start_cli(out, tmpdir, *ray_args)
    wait_for_folds(out, 1, first)
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    assert wait_until_gone(tmpdir, timeout=15) == []
    after_interrupt = len(list((out / "folds").glob("*.json")))
    assert 1 <= after_interrupt < FOLDS

    second = start_cli(out, tmpdir, *ray_args)
    wait_for_folds(out, after_interrupt + 1, second)
    second.send_signal(signal.SIGKILL)  # the driver alone, with no chance to clean up
    second.communicate(timeout=60)
    assert wait_until_gone(tmpdir, timeout=15) == []  # the reaper removed what Ray left behind
    after_kill = len(list((out / "folds").glob("*.json")))
    assert after_interrupt < after_kill < FOLDS
    assert not (out / "result.json").exists()

    third = run_to_the_end(out, tmpdir, *ray_args)
    assert third.returncode == 0, third.stderr
    assert f"{after_kill} of {FOLDS} folds already done" in third.stderr
    assert_same_run(out, sequential_run)
    assert wait_until_gone(tmpdir, timeout=15) == []
