"""The verdict from the command line: `tst-bench run` ends with it and result.json carries it;
`tst-bench report` gives one verdict per benchmark from all its runs, whatever their order."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from .helpers import run_cli

RF = ("--backend", "rf", "--trainer", "rf", "--no-progress")
#: a weak shortcut (about +8 points over majority at this size): where verdicts used to flip
WEAK = "synthetic:shortcut?rows=300&seed=5&strength=0.6&fraction=0.3"


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """The same weak-shortcut benchmark run with seeds 0 and 1 through the CLI."""
    root = tmp_path_factory.mktemp("seeds")
    runs = []
    for seed in (0, 1):
        out = root / f"s{seed}"
        completed = run_cli(
            "run", "--dataset", WEAK, *RF, "--folds", "3", "--seed", str(seed), "--out", str(out)
        )
        assert completed.returncode == 0, completed.stderr
        runs.append((out, completed.stdout))
    return runs


def test_run_ends_with_the_verdict_and_result_json_carries_it(two_seeds):
    for out, stdout in two_seeds:
        result = json.loads((out / "result.json").read_text())
        verdict = result["verdict"]
        assert stdout.strip().splitlines()[-1] == verdict["text"]
        assert verdict["signal"] in ("signal", "none", "below")
        assert verdict["floor"] == max(result["baselines"]["majority"], result["baselines"]["chance"])
        assert verdict["points"] == pytest.approx(100 * (result["score"] - verdict["floor"]))
        assert tuple(verdict["ci95"]) == tuple(result["ci95"])
        assert result["interval"]["replicates"] == 1 and result["interval"]["sample_se"] > 0


def verdict_cells(report_dir):
    """The verdict table's row of the report: (runs pooled, verdict text)."""
    first = (report_dir / "report.md").read_text().split("\n## ")[1]
    row = next(line for line in first.splitlines() if line.startswith("| synthetic:shortcut"))
    cells = [cell.strip() for cell in row.strip("|").split(" | ")]
    return cells[-2], cells[-1]


def test_the_report_pools_all_runs_of_a_benchmark_whatever_their_order(two_seeds, tmp_path):
    (first, _), (second, _) = two_seeds
    verdicts = []
    for order, inputs in (("forward", (first, second)), ("backward", (second, first))):
        completed = run_cli("report", *map(str, inputs), "--out", str(tmp_path / order))
        assert completed.returncode == 0, completed.stderr
        verdicts.append(verdict_cells(tmp_path / order))
    assert verdicts[0] == verdicts[1]
    runs, text = verdicts[0]
    assert runs == "2" and text.endswith("(2 runs pooled)")
    scores = [json.loads((out / "result.json").read_text())["score"] for out, _ in two_seeds]
    assert f"TsT {np.mean(scores):.2f} [" in text
    assert re.search(r"vs (majority|chance) 0\.\d\d: ", text)
