"""Helpers for tests: dataset files and running the CLI, in a subprocess or in this process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tst_bench.cli import main
from tst_bench.datasets import to_test_instance, to_training_datum
from tst_bench.trainers.base import TrainingJob


def write_jsonl(path: Path, rows: Iterable[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def run_cli(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`tst-bench ARGS` in a fresh interpreter, as a user would run it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tst_bench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def run_cli_in_process(capsys, caplog, *args: str) -> subprocess.CompletedProcess:
    """`tst-bench ARGS` through `main(argv)` in this process: its exit code, its output, and its
    log as stderr, without a fresh interpreter's start-up (where a subprocess adds nothing)."""
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tst_bench"):
        code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["tst-bench", *args], code, captured.out, captured.err + caplog.text)


def fold_jobs(records, folds, root):
    """`folds` training jobs over interleaved folds of `records` (seeds 100, 101, ...), and each
    fold's held-out test instances."""
    jobs, tests = [], []
    for fold in range(folds):
        held_out = records[fold::folds]
        train = [r for i, r in enumerate(records) if i % folds != fold]
        jobs.append(TrainingJob([to_training_datum(r) for r in train], root / f"fold{fold}", seed=100 + fold))
        tests.append([to_test_instance(r) for r in held_out])
    return jobs, tests


def score_difference(ours, reference) -> float:
    """Largest difference of an option's score between two predictions of the same rows."""
    return max(
        abs(left.option_probs[label] - score)
        for left, right in zip(ours, reference, strict=True)
        for label, score in right.option_probs.items()
    )


def assert_same_scores(ours, reference, tolerance=1e-3):
    assert score_difference(ours, reference) < tolerance
    for left, right in zip(ours, reference, strict=True):
        ranked = sorted(right.option_probs.values(), reverse=True)
        if ranked[0] - ranked[1] > tolerance:  # a near-tie may break either way
            assert left.prediction == right.prediction
