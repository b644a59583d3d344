"""Every kind of bad input: exit code 2, a message naming the row/field/cause, nothing written."""

import json
import logging
import os
from pathlib import Path

import pytest

from tst_bench.cli import main

from .helpers import run_cli, write_jsonl

GOOD = {"question": "Pick one", "options": ["x", "y", "z"], "answer": "A"}


def rows_with(bad_row, count=6):
    return [{**GOOD, "id": f"r{i}"} for i in range(count - 1)] + [bad_row]


BAD_DATASETS = {
    "invalid_json": (["{", *[json.dumps({**GOOD, "id": "a"})]], "row 1: invalid JSON"),
    "row_not_object": ([json.dumps([1, 2])], "row 1: expected an object"),
    "unrecognised_row": (rows_with({"id": "q", "prompt": "?"}), "row 6: unrecognised row"),
    "empty_question": (rows_with({**GOOD, "id": "q", "question": "  "}), "row 6: field 'question'"),
    "answer_not_an_option": (rows_with({**GOOD, "id": "q", "answer": "E"}), "row 6: field 'answer'"),
    "one_option": (rows_with({**GOOD, "id": "q", "options": ["x"]}), "row 6: field 'options'"),
    "duplicate_id": (rows_with({**GOOD, "id": "r0"}), "row 6: field 'id': duplicate id 'r0'"),
    "missing_gpt_turn": (
        rows_with({"conversations": [{"from": "human", "value": "Q?\nA. x\nB. y"}]}),
        "row 6: field 'conversations': no 'gpt' turn",
    ),
    "unknown_format": (rows_with({**GOOD, "id": "q", "format": "mcq"}), "row 6: field 'format'"),
    "numeric_answer_not_a_number": (
        rows_with({"id": "q", "question": "How many?", "answer": "many", "format": "num"}),
        "row 6: field 'answer': answer 'many' is not a number",
    ),
    "gt_idx_out_of_range": (
        rows_with({"id": "q", "question": "Q", "options": ["x", "y"], "gt_idx": 2}),
        "row 6: field 'gt_idx'",
    ),
    "options_not_a_list": (rows_with({**GOOD, "id": "q", "options": "x|y"}), "row 6: field 'options'"),
    "no_options": (
        rows_with({"id": "q", "question": "Pick one", "answer": "B"}),
        "row 6: field 'options': no options: the row has neither an 'options' list nor option columns",
    ),
    "empty_options_list": (
        rows_with({**GOOD, "id": "q", "options": []}),
        "row 6: field 'options': no options: 'options' is an empty list",
    ),
    "empty_option": (
        rows_with({**GOOD, "id": "q", "options": ["x", " ", "z"]}),
        "row 6: field 'options': option B is empty",
    ),
    "duplicate_options": (
        rows_with({**GOOD, "id": "q", "options": ["x", "y", "X "]}),
        "row 6: field 'options': options A and C are the same ('X')",
    ),
    "answer_names_several_options": (
        rows_with({**GOOD, "id": "q", "answer": "A, C"}),
        "row 6: field 'answer': answer 'A, C' names several options (A, C)",
    ),
    "answer_names_no_option": (
        rows_with({**GOOD, "id": "q", "answer": "w"}),
        "row 6: field 'answer': answer 'w' names none of the options",
    ),
    "sharegpt_without_option_lines": (
        rows_with({"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "B"}]}),
        "row 6: field 'conversations': no options: the human turn has no 'Options:' block",
    ),
    "option_columns_with_a_gap": (
        rows_with({"id": "q", "question": "Pick one", "A": "x", "B": "", "C": "z", "answer": "A"}),
        "row 6: field 'B': option column B is empty but C is not",
    ),
    "too_few_rows_for_folds": ([json.dumps({**GOOD, "id": "only"})], "too few rows for 5 folds"),
}


@pytest.fixture
def run_main(caplog):
    def invoke(*args):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="tst_bench"):
            code = main(list(args))
        return code, caplog.text

    return invoke


@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_bad_dataset_exits_2_and_writes_nothing(case, tmp_path, run_main):
    rows, message = BAD_DATASETS[case]
    dataset = write_jsonl(tmp_path / f"{case}.jsonl", rows)
    out = tmp_path / "out"
    code, log = run_main("run", "--dataset", str(dataset), "--out", str(out))
    assert code == 2
    assert message in log
    assert str(dataset) in log or "folds" in log
    assert not out.exists()


def good_dataset(tmp_path):
    return str(write_jsonl(tmp_path / "good.jsonl", [{**GOOD, "id": f"r{i}"} for i in range(10)]))


@pytest.mark.parametrize(
    ("extra_args", "message"),
    [
        (["--model", "/nonexistent/model"], "model '/nonexistent/model' not found"),
        (["--model", "no-such-model"], "built-in models are tiny"),
        (["--backend", "tensorrt"], "unknown backend 'tensorrt'"),
        (["--trainer", "magic"], "unknown trainer 'magic'"),
        (["--folds", "1"], "--folds must be at least 2"),
        (["--limit", "0"], "--limit must be positive"),
        (["--predictor-option", "batch_sise=4"], "unknown option(s) ['batch_sise']"),
        (["--trainer-option", "noequals"], "--trainer-option expects KEY=VALUE"),
        (["--trainer-option", "lora_rank=[1,"], "cannot parse"),
    ],
)
def test_bad_options_exit_2(extra_args, message, tmp_path, run_main):
    out = tmp_path / "out"
    code, log = run_main("run", "--dataset", good_dataset(tmp_path), "--out", str(out), *extra_args)
    assert code == 2
    assert message in log
    assert not out.exists()


LATIN1_ROW = json.dumps({**GOOD, "id": "q", "question": "Café?"}, ensure_ascii=False).encode("latin-1")
GOOD_LINE = json.dumps({**GOOD, "id": "r0"}).encode()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "dataset file not found"),
        (
            "latin1.jsonl",
            GOOD_LINE + b"\n\n" + LATIN1_ROW + b"\n",
            "row 3: not UTF-8 text: byte 0xe9 at column 18",
        ),
        (
            "latin1.json",
            b"[" + GOOD_LINE + b",\n" + LATIN1_ROW + b"]",
            "line 2: not UTF-8 text: byte 0xe9 at column 18",
        ),
        (
            "latin1.csv",
            b'id,question,options,answer\nr0,Q,"[""x"",""y""]",A\nr1,Caf\xe9,"[]",A\n',
            "line 3: not UTF-8 text: byte 0xe9 at column 7",
        ),
        ("data.txt", "hello", "unsupported dataset type '.txt'"),
        ("data.csv", "id,question\n1,What?\n", "row 1: field 'answer': missing"),
        ("data.json", "{not json", "invalid JSON"),
    ],
)
def test_bad_files_exit_2(name, content, message, tmp_path, run_main):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    out = tmp_path / "out"
    code, log = run_main("run", "--dataset", str(path), "--out", str(out))
    assert code == 2
    assert f"{path}: {message}" in log
    assert not out.exists()


def test_a_hub_copy_that_is_not_utf8_exits_2_naming_file_and_row(tmp_path, run_main):
    path = tmp_path / "test.jsonl"
    path.write_bytes(GOOD_LINE + b"\n" + LATIN1_ROW + b"\n")
    out = tmp_path / "out"
    code, log = run_main("run", "--dataset", f"hf:someone/mirror?file={path}", "--out", str(out))
    assert code == 2
    assert f"{path}: row 2: not UTF-8 text: byte 0xe9" in log
    assert not out.exists()


def test_out_dir_with_other_content_is_refused(tmp_path, run_main):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, log = run_main("run", "--dataset", good_dataset(tmp_path), "--out", str(out))
    assert code == 2
    assert "not a tst-bench run directory" in log
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_exit_code_and_message_from_a_real_process(tmp_path):
    dataset = write_jsonl(tmp_path / "bad.jsonl", rows_with({**GOOD, "id": "q", "answer": "Q"}))
    completed = run_cli("run", "--dataset", str(dataset), "--out", str(tmp_path / "out"), timeout=120)
    assert completed.returncode == 2
    assert "row 6: field 'answer'" in completed.stderr
    assert not (tmp_path / "out").exists()


def test_a_row_without_options_exits_2_unless_declared_open(tmp_path):
    """A row without options was scored as open-ended without a word; now it is an input error
    unless the row (`format`) or the command (`--without-options`) declares it."""
    rows = [{"id": f"q{i}", "question": f"Which colour is item {i}?", "answer": "red"} for i in range(12)]
    dataset = write_jsonl(tmp_path / "open.jsonl", rows)
    out = tmp_path / "out"
    args = ("run", "--dataset", str(dataset), "--backend", "rf", "--trainer", "rf", "--folds", "3")
    refused = run_cli(*args, "--out", str(out), timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert f"{dataset}: row 1: field 'options': no options" in refused.stderr
    assert "--without-options num|oe" in refused.stderr and not out.exists()
    declared = run_cli(*args, "--out", str(out), "--without-options", "oe", "--no-progress", timeout=300)
    assert declared.returncode == 0, declared.stderr
    assert json.loads((out / "result.json").read_text())["metric"] == "exact_match"


def test_a_file_that_is_not_utf8_exits_2_from_a_real_process(tmp_path):
    dataset = tmp_path / "latin1.jsonl"
    dataset.write_bytes(GOOD_LINE + b"\n" + LATIN1_ROW + b"\n")
    completed = run_cli("run", "--dataset", str(dataset), "--out", str(tmp_path / "out"), timeout=120)
    assert completed.returncode == 2, completed.stderr
    assert f"{dataset}: row 2: not UTF-8 text: byte 0xe9 at column 18" in completed.stderr
    assert not (tmp_path / "out").exists()


FOREST = ("--backend", "rf", "--trainer", "rf", "--folds", "2")


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this user cannot write in: a read-only one, or for root a read-only file system."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for folder in (locked, Path("/proc/sys")):
        if folder.is_dir() and not os.access(folder, os.W_OK):
            return folder
    pytest.skip("no folder here that this user cannot write in (root, and /proc/sys writable)")


@pytest.mark.parametrize("where", ["a file", "under a file", "unwritable"])
def test_an_out_that_cannot_be_a_folder_exits_2_before_any_work(where, tmp_path, run_main):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    out, message = {
        "a file": (taken, f"--out {taken} is a file, not a folder"),
        "under a file": (taken / "run", f"--out {taken / 'run'} lies under {taken}, which is a file"),
        "unwritable": (unwritable_folder(tmp_path) / "run", "is not writable for this user"),
    }[where]
    code, log = run_main("run", "--dataset", good_dataset(tmp_path), *FOREST, "--out", str(out))
    assert (code, message in log) == (2, True), log
    assert taken.read_text() == "mine" and not (out.parent / "run").exists()


@pytest.mark.parametrize("command", ["run", "prune"])
def test_an_option_of_the_wrong_type_exits_2_naming_it(command, tmp_path, run_main):
    out = tmp_path / "out"
    args = (command, "--dataset", good_dataset(tmp_path), *FOREST, "--out", str(out))
    code, log = run_main(*args, "--trainer-option", "n_estimators=abc")
    assert code == 2
    assert "option n_estimators='abc' for RFConfig: Input should be a valid integer" in log
    assert not out.exists()


@pytest.mark.slow
def test_a_device_this_machine_lacks_exits_2_and_leaves_nothing_in_the_way(tmp_path, run_main):
    import torch

    count = torch.cuda.device_count()
    device = "cuda" if count == 0 else f"cuda:{count}"
    out = tmp_path / "out"
    args = ("run", "--dataset", good_dataset(tmp_path), "--folds", "2", "--no-zero-shot", "--out", str(out))
    code, log = run_main(*args, "--device", device)
    assert code == 2
    assert f"--device {device}: " in log and ("no CUDA GPU" in log or f"torch sees {count}" in log)
    assert not out.exists()
    code, log = run_main(*args, "--device", "cpu")  # the corrected command
    assert code == 0, log


def test_a_rerun_with_other_settings_names_what_differs(tmp_path, run_main):
    out = tmp_path / "out"
    args = (
        "run",
        "--dataset",
        good_dataset(tmp_path),
        "--backend",
        "rf",
        "--trainer",
        "rf",
        "--out",
        str(out),
    )
    assert run_main(*args, "--folds", "2")[0] == 0
    code, log = run_main(*args, "--folds", "3", "--workers", "2")
    assert code == 2
    assert f"{out} holds a different run (dataset " in log
    assert "): folds 2 there, 3 now; choose another --out or pass --overwrite" in log
