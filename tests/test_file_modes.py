"""Files tst-bench writes get the mode a plain open() gives under the user's umask (0644 under 022),
so colleagues can read shared results and reports; folders get mkdir's (0755)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tst_bench.models.cache import build_once

SMALL = "synthetic:shortcut?rows=60&seed=1"
FOREST = ("--backend", "rf", "--trainer", "rf", "--folds", "3", "--no-progress")


def cli(*args: str, cwd: Path) -> None:
    """`tst-bench ARGS` in a fresh interpreter under umask 022, as a user's shell would run it."""
    completed = subprocess.run(
        [sys.executable, "-m", "tst_bench.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        umask=0o022,
    )
    assert completed.returncode == 0, completed.stderr


def modes(root: Path) -> dict[str, str]:
    """Every file and folder under `root` (itself excluded) with its permission bits, octal."""
    return {str(path.relative_to(root)): oct(stat.S_IMODE(path.stat().st_mode)) for path in root.rglob("*")}


@pytest.mark.slow
def test_runs_reports_comparisons_and_prunes_are_readable_by_others(tmp_path):
    out = tmp_path / "out"
    cli("run", "--dataset", SMALL, *FOREST, "--save-adapters", "--out", str(out / "run"), cwd=tmp_path)
    cli("report", str(out / "run"), "--out", str(out / "report"), cwd=tmp_path)
    cli("compare", str(out / "run"), str(out / "run"), "--out", str(out / "compare"), cwd=tmp_path)
    prune = ("--budget", "20%", "--batch-size", "10%")
    cli("prune", "--dataset", SMALL, *FOREST, *prune, "--out", str(out / "prune"), cwd=tmp_path)
    found = modes(out)
    expected_files = [
        "run/result.json",
        "run/samples.jsonl",
        "run/run.json",
        "run/folds/r0_f0.json",
        "report/report.html",
        "report/report.md",
        "compare/comparison.json",
        "prune/curves.png",
        "prune/ibp/pruned.jsonl",
    ]
    assert set(expected_files) <= set(found)
    assert any(name.startswith("run/adapters/") for name in found)  # the forests' saved state
    wrong = {
        name: mode
        for name, mode in found.items()
        if mode != (oct(0o755) if (out / name).is_dir() else oct(0o644))
    }
    assert not wrong, wrong


def test_a_built_model_folder_is_readable_by_others(tmp_path, monkeypatch):
    monkeypatch.setenv("TST_BENCH_CACHE", str(tmp_path / "cache"))

    def build(staging: Path) -> None:
        (staging / "weights.bin").write_bytes(b"w")

    previous = os.umask(0o022)
    try:
        folder = build_once("model", build)
    finally:
        os.umask(previous)
    assert modes(folder.parent) == {"model": oct(0o755), "model/weights.bin": oct(0o644)}
