"""Iterative Bias Pruning: selection rules, a real TsT-RF prune with its random control, resume, bad input."""

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tst_bench.cli import main
from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset
from tst_bench.errors import InputError
from tst_bench.ibp import PruneConfig, Trajectory, run_prune
from tst_bench.ibp.runner import normalize, parse_count
from tst_bench.ibp.selection import class_quotas, select_highest_bias, select_random
from tst_bench.schemas import QARecord

from .helpers import run_cli_in_process

SHORTCUT = "synthetic:shortcut?rows=400&seed=11"


def records(answers):
    return [
        QARecord(id=f"q{i}", question=f"Question {i}?", options=["a", "b", "c"], answer=answer, format="mc")
        for i, answer in enumerate(answers)
    ]


def rf_prune(out, dataset=SHORTCUT, **overrides):
    run = RunConfig(dataset=dataset, backend="rf", trainer="rf", zero_shot=False, folds=3, seed=0, out=out)
    settings = {"budget": "30%", "batch_size": "10%", **overrides}
    return PruneConfig(run=run, **settings)


def test_counts_are_rows_or_percentages():
    assert parse_count("25%", 400, "--budget") == 100
    assert parse_count("7", 400, "--budget") == 7
    assert parse_count(12, 400, "--budget") == 12
    for bad in ("ten", "-3", "-5%"):
        with pytest.raises(InputError, match="--budget"):
            parse_count(bad, 400, "--budget")


def test_quotas_follow_class_sizes_and_keep_the_floor():
    assert class_quotas({"A": 60, "B": 30, "C": 10}, 20, 0) == {"A": 12, "B": 6, "C": 2}
    quotas = class_quotas({"A": 60, "B": 30, "C": 10}, 80, 8)
    assert quotas["C"] <= 2 and quotas["B"] <= 22 and quotas["A"] <= 52
    assert sum(quotas.values()) == 2 + 22 + 52  # no more rows exist above the floors


def test_highest_bias_first_and_balance_never_empties_a_class():
    rows = records(["A"] * 6 + ["B"] * 3)
    bias = {r.id: (0.9 if r.answer == "B" else 0.1 + i / 100) for i, r in enumerate(rows)}
    assert set(select_highest_bias(rows, bias, 3, balance=False, min_class_rows=0, seed=0)) == {
        "q6",
        "q7",
        "q8",
    }
    balanced = select_highest_bias(rows, bias, 6, balance=True, min_class_rows=1, seed=0)
    kept = Counter(r.answer for r in rows if r.id not in balanced)
    assert kept["A"] >= 1 and kept["B"] >= 1
    assert {"q6", "q7"} & set(balanced)  # within class B the highest s(x) still goes first


def test_random_selection_is_seeded_per_round():
    rows = records(["A", "B", "C"] * 20)
    first = select_random(rows, 10, balance=False, min_class_rows=0, seed=3, round_index=0)
    assert first == select_random(rows, 10, balance=False, min_class_rows=0, seed=3, round_index=0)
    assert first != select_random(rows, 10, balance=False, min_class_rows=0, seed=3, round_index=1)
    assert len(set(first)) == 10


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    out = tmp_path_factory.mktemp("prune") / "out"
    return out, run_prune(rf_prune(out))


def test_ibp_removes_shortcut_rows_first_and_beats_random_pruning(pruned):
    _, result = pruned
    ibp, control = result.ibp, result.control
    assert ibp.flag == "shortcut" and ibp.stop_reason == "budget"
    assert ibp.removal_counts == control.removal_counts == [40, 40, 40]
    first = ibp.rounds[0]
    base_rate = first.flag_rows / first.n_rows
    assert first.precision >= 0.8 > base_rate + 0.3
    assert first.flag_auroc > 0.75
    assert control.rounds[0].precision < base_rate + 0.2
    assert ibp.rounds[-1].score < control.rounds[-1].score - 0.05
    assert ibp.rounds[-1].score < first.score - 0.1
    assert control.rounds[0].run_dir == first.run_dir  # the control reuses IBP's first diagnosis


def test_prune_outputs_are_consistent_and_loadable(pruned):
    out, result = pruned
    for strategy in ("ibp", "random"):
        trajectory = Trajectory.model_validate_json((out / strategy / "trajectory.json").read_text())
        removed = [json.loads(line) for line in (out / strategy / "removed.jsonl").read_text().splitlines()]
        pruned_set = load_dataset(str(out / strategy / "pruned.jsonl"))
        assert len(removed) == trajectory.removed_total == 120
        assert len(pruned_set.records) == 400 - 120
        assert not {row["id"] for row in removed} & {r.id for r in pruned_set.records}
        assert Counter(row["round"] for row in removed) == {0: 40, 1: 40, 2: 40}
        sizes = [entry.n_rows for entry in trajectory.rounds]
        assert sizes == [400, 360, 320, 280]
        for entry in trajectory.rounds:
            assert (out / entry.run_dir / "result.json").exists()
            assert len(load_dataset(str(out / entry.dataset)).records) == entry.n_rows
    # the pruned file keeps every field: it is what the next round ran on
    last = result.ibp.rounds[-1]
    assert (out / last.dataset).read_bytes() == (out / "ibp" / "pruned.jsonl").read_bytes()
    comparison = json.loads((out / "comparison.json").read_text())
    assert [row["removed"] for row in comparison["rounds"]] == [0, 40, 80, 120]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_interrupted_prune_resumes_to_the_same_trajectory(tmp_path, caplog):
    config = rf_prune(tmp_path / "out", dataset="synthetic:shortcut?rows=200&seed=3", control=False)
    result = run_prune(config)
    # as if killed during round 2: its last fold and everything after it never got written
    out = tmp_path / "out"
    round_two = out / result.ibp.rounds[2].run_dir
    (round_two / "folds" / "r0_f2.json").unlink()
    for name in ("result.json", "samples.jsonl"):
        (round_two / name).unlink()
    for later in result.ibp.rounds[3:]:
        shutil.rmtree(out / later.run_dir)
    shutil.rmtree(out / "ibp")
    with caplog.at_level(logging.INFO, logger="tst_bench"):
        resumed = run_prune(config)
    assert "2 of 3 folds already done" in caplog.text
    assert caplog.text.count("3 of 3 folds already done") == 2  # rounds 0 and 1 are reused whole
    assert resumed.ibp == result.ibp


def test_balanced_pruning_keeps_answer_proportions(tmp_path):
    result = run_prune(
        rf_prune(tmp_path / "out", budget="50%", batch_size="25%", balance=True, control=False)
    )
    assert result.control is None and not (tmp_path / "out" / "curves.png").exists()
    before = Counter(r.answer for r in load_dataset(SHORTCUT).records)
    after = Counter(r.answer for r in load_dataset(str(tmp_path / "out" / "ibp" / "pruned.jsonl")).records)
    assert sum(after.values()) == 200
    for letter, count in before.items():
        assert abs(after[letter] - count / 2) <= 2


def test_tau_stops_before_removing_anything(tmp_path):
    result = run_prune(rf_prune(tmp_path / "out", tau=1.0))
    assert result.ibp.stop_reason == "tau" and result.ibp.removed_total == 0
    assert len(result.ibp.rounds) == 1 and result.control.removed_total == 0


def test_normalized_records_read_back_identically(tmp_path):
    from tst_bench.datasets.export import write_records

    original = load_dataset("synthetic:shortcut?rows=20").records
    columns = ("question_type",)
    once = normalize(original, columns)
    write_records(tmp_path / "d.jsonl", once)
    assert load_dataset(str(tmp_path / "d.jsonl"), group_columns=columns).records == once
    assert normalize(once, columns) == once


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "lots"], "--budget must be a row count or a percentage"),
        (["--batch-size", "0"], "--batch-size '0' removes no rows"),
        (["--tau", "1.5"], "--tau must lie in [0, 1]"),
        (["--folds", "1"], "--folds must be at least 2"),
        (["--backend", "nope"], "unknown backend 'nope'"),
    ],
)
def test_bad_prune_input_exits_2_and_writes_nothing(extra, message, tmp_path, caplog):
    out = tmp_path / "out"
    args = ["prune", "--dataset", "synthetic:shortcut?rows=60", "--backend", "rf", "--trainer", "rf"]
    with caplog.at_level(logging.ERROR, logger="tst_bench"):
        code = main([*args, *extra, "--out", str(out)])
    assert code == 2
    assert message in caplog.text
    assert not out.exists()


def test_prune_cli_and_a_different_prune_in_the_same_directory(tmp_path, capsys, caplog):
    out = tmp_path / "out"
    args = ["prune", "--dataset", "synthetic:shortcut?rows=120&seed=2", "--backend", "rf", "--trainer", "rf"]
    args += ["--folds", "3", "--budget", "20%", "--batch-size", "10%", "--out", str(out)]
    completed = run_cli_in_process(capsys, caplog, *args)
    assert completed.returncode == 0, completed.stderr
    assert "stopped by budget" in completed.stdout and "curves:" in completed.stdout
    trajectory = json.loads((out / "ibp" / "trajectory.json").read_text())
    assert [entry["removed"] for entry in trajectory["rounds"]] == [12, 12, 0]
    other = run_cli_in_process(capsys, caplog, *[arg if arg != "20%" else "30%" for arg in args])
    assert other.returncode == 2
    assert "holds a different prune" in other.stderr


@pytest.mark.slow
def test_ibp_with_the_tiny_llm(tmp_path):
    """The same loop with the real LLM TsT (peft + hf on the tiny model), two rounds."""
    run = RunConfig(
        dataset="synthetic:shortcut?rows=200&seed=4", zero_shot=False, folds=3, out=tmp_path / "o"
    )
    result = run_prune(PruneConfig(run=run, budget="20", batch_size="20", control=False))
    (first, second) = result.ibp.rounds
    assert first.removed == 20 and second.n_rows == 180
    assert first.precision > first.flag_rows / first.n_rows
    result_file = json.loads((Path(tmp_path / "o") / first.run_dir / "result.json").read_text())
    assert (result_file["backend"], result_file["trainer"]) == ("hf", "peft")
