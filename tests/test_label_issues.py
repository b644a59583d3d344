"""Possible wrong answer keys: the held-out option probabilities through cleanlab, in result.json,
the run's output and the report; without cleanlab the result says the keys were not checked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tst_bench.datasets import load_dataset
from tst_bench.reports import write_report

from .engines import require_cleanlab
from .helpers import run_cli, write_jsonl

#: the answer follows the question's scene in 60% of rows; 5% of all keys are wrong
PLANTED = "synthetic:shortcut?rows=600&seed=3&strength=1&fraction=0.6&wrong_keys=0.05"
RF = ("--backend", "rf", "--trainer", "rf", "--folds", "5", "--no-progress")


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    require_cleanlab()
    out = tmp_path_factory.mktemp("planted") / "run"
    completed = run_cli("run", "--dataset", PLANTED, *RF, "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    return out, completed.stdout


def test_planted_wrong_keys_are_found_and_listed(planted_run, tmp_path):
    out, stdout = planted_run
    records = load_dataset(PLANTED).records
    planted = {r.id for r in records if r.metadata["wrong_key"]}
    readable = {r.id for r in records if r.metadata["wrong_key"] and r.metadata["shortcut"]}
    found = json.loads((out / "result.json").read_text())["label_issues"]
    assert found["status"] == "checked" and found["checked"] == 600
    flagged = [issue["id"] for issue in found["issues"]]
    assert len(set(flagged) & planted) >= 0.8 * len(flagged)  # precision
    assert len(set(flagged) & readable) >= 0.8 * len(readable)  # recall where the text gives it away
    first = found["issues"][0]
    assert (
        first["given"] != first["suggested"] and first["suggested_probability"] > first["given_probability"]
    )
    assert f"answer keys: {len(flagged)} of 600 possibly wrong" in stdout and flagged[0] in stdout
    assert found["reliable_from"] is not None and found["cleanlab_flagged"] >= len(flagged)

    report = write_report([out], tmp_path / "report").markdown.read_text()
    assert "### Possible wrong answer keys" in report
    assert f"{len(flagged)} of 600 multiple-choice samples have possibly wrong keys" in report
    assert f"| 1 | {flagged[0]} |" in report


def test_no_key_is_questioned_where_the_blind_model_is_never_reliably_confident(tmp_path):
    """A weak shortcut: cleanlab flags about half the keys; none is reported."""
    require_cleanlab()
    weak = "synthetic:shortcut?rows=600&seed=0&strength=0.6&fraction=0.3&wrong_keys=0.05"
    out = tmp_path / "run"
    completed = run_cli("run", "--dataset", weak, *RF, "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    found = json.loads((out / "result.json").read_text())["label_issues"]
    assert found["status"] == "checked" and found["cleanlab_flagged"] > 100
    assert found["issues"] == [] and found["reliable_from"] is None
    assert (
        "answer keys: none questioned (the held-out models are never reliably confident" in completed.stdout
    )


def test_without_cleanlab_the_run_says_the_keys_were_not_checked(tmp_path):
    """cleanlab made unimportable in a fresh interpreter: no list is made up in its place."""
    out = tmp_path / "run"
    script = (
        "import sys; sys.modules['cleanlab'] = None; from tst_bench.cli import main;"
        f" sys.exit(main({['run', '--dataset', PLANTED, *RF, '--out', str(out)]!r}))"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "answer keys: cleanlab is not installed: answer keys were not checked" in completed.stdout
    found = json.loads((out / "result.json").read_text())["label_issues"]
    assert found == {
        "status": "cleanlab not installed",
        "checked": 0,
        "issues": [],
        "cleanlab_flagged": 0,
        "reliable_from": None,
        "note": "cleanlab is not installed: answer keys were not checked (pip install 'tst-bench[cleanlab]')",
    }
    report = write_report([out], tmp_path / "report").markdown.read_text()
    assert "answer keys not checked: cleanlab is not installed" in report


def test_keys_that_all_name_one_option_are_not_checked_and_the_run_still_finishes(tmp_path):
    """cleanlab refuses labels of one class; the run ends normally and says why no key was checked."""
    require_cleanlab()
    rows = [
        {"id": f"q{i}", "question": f"Pick {i}?", "options": ["x", "y", "z"], "answer": "B"}
        for i in range(30)
    ]
    dataset = write_jsonl(tmp_path / "all_b.jsonl", rows)
    out = tmp_path / "run"
    args = ("--backend", "rf", "--trainer", "rf", "--folds", "3", "--no-progress", "--out", str(out))
    completed = run_cli("run", "--dataset", str(dataset), *args)
    assert completed.returncode == 0, completed.stderr
    found = json.loads((out / "result.json").read_text())["label_issues"]
    assert found["status"] == "not applicable" and found["issues"] == []
    assert "every key is option B" in found["note"]
