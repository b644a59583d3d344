"""End-to-end TsT runs through the CLI on the tiny model: outputs, determinism, resume, Ctrl-C.

One run through a fresh interpreter (`small_run`) is the reference of every other test here: reruns
go through `main(argv)` in this process, and only the runs that are interrupted by a signal need a
process of their own.
"""

import json
import signal
import subprocess
import sys
import time

import pytest

from .helpers import run_cli, run_cli_in_process

SMALL = "synthetic:shortcut?rows=200&seed=3"
SMALL_RUN = ("run", "--dataset", SMALL, "--folds", "3", "--seed", "1")


def read_samples(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "run"
    completed = run_cli(*SMALL_RUN, "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    return out, completed


def test_result_and_samples_files(small_run):
    out, completed = small_run
    result = json.loads((out / "result.json").read_text())
    assert result["metric"] == "accuracy"
    low, high = result["ci95"]
    assert low <= result["score"] <= high
    assert result["score_std"] >= 0
    assert set(result["baselines"]) == {"zero_shot", "majority", "chance", "zero_shot_status"}
    assert result["baselines"]["zero_shot_status"] == "scored"
    assert result["baselines"]["chance"] == pytest.approx(0.25)
    assert [f["fold"] for f in result["folds"]] == [0, 1, 2]
    for fold in result["folds"]:
        assert fold["n_train"] + fold["n_test"] == 200
        assert fold["timings"]["train_s"] > 0 and fold["timings"]["total_s"] >= fold["timings"]["train_s"]
    samples = read_samples(out)
    assert len(samples) == 200
    assert {"id", "fold", "target", "prediction", "correct", "bias_score"} <= samples[0].keys()
    assert all(0.0 <= s["bias_score"] <= 1.0 for s in samples)
    assert sum(s["correct"] for s in samples) / 200 == pytest.approx(result["score"], abs=0.01)
    assert "TsT" in completed.stdout and "zero-shot" in completed.stdout
    assert not list((out / "adapters").glob("*/adapter_model.safetensors"))


def test_same_seed_gives_identical_samples(small_run, tmp_path, capsys, caplog):
    out, _ = small_run
    again = tmp_path / "again"
    completed = run_cli_in_process(capsys, caplog, *SMALL_RUN, "--out", str(again))
    assert completed.returncode == 0, completed.stderr
    assert (again / "samples.jsonl").read_bytes() == (out / "samples.jsonl").read_bytes()


def test_rerun_of_a_finished_run_recomputes_nothing(small_run, capsys, caplog):
    out, _ = small_run
    before = (out / "samples.jsonl").read_bytes()
    completed = run_cli_in_process(capsys, caplog, *SMALL_RUN, "--out", str(out))
    assert completed.returncode == 0
    assert "3 of 3 folds already done" in completed.stderr
    assert "zero-shot baseline" not in completed.stderr
    assert (out / "samples.jsonl").read_bytes() == before


def test_a_different_run_in_the_same_directory_is_refused(small_run, capsys, caplog):
    out, _ = small_run
    four_folds = ("run", "--dataset", SMALL, "--folds", "4", "--seed", "1")
    completed = run_cli_in_process(capsys, caplog, *four_folds, "--out", str(out))
    assert completed.returncode == 2
    assert "holds a different run" in completed.stderr


def start_run(out):
    return subprocess.Popen(
        [sys.executable, "-m", "tst_bench.cli", *SMALL_RUN, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_folds(out, count, process, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list((out / "folds").glob("*.json"))) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise TimeoutError(f"fewer than {count} folds after {timeout}s")


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_to_the_uninterrupted_result(how, small_run, tmp_path, capsys, caplog):
    reference, _ = small_run
    out = tmp_path / "interrupted"
    process = start_run(out)
    wait_for_folds(out, 1, process)
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    if how == signal.SIGINT:
        assert process.returncode == 130
        assert "rerun the same command to resume" in stderr
    else:
        assert process.returncode == -signal.SIGKILL
    assert not (out / "result.json").exists()
    assert not list(out.rglob("*.tmp"))
    finished = len(list((out / "folds").glob("*.json")))
    assert 1 <= finished < 3

    resumed = run_cli_in_process(capsys, caplog, *SMALL_RUN, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished} of 3 folds already done" in resumed.stderr
    assert (out / "samples.jsonl").read_bytes() == (reference / "samples.jsonl").read_bytes()
    result, expected = (json.loads((d / "result.json").read_text()) for d in (out, reference))
    assert result["score"] == expected["score"]
    assert [f["score"] for f in result["folds"]] == [f["score"] for f in expected["folds"]]
