import json

import pandas as pd
import pytest

from tst_bench.datasets import blind_instruction, load_dataset, parse_synthetic_spec
from tst_bench.datasets.rows import RowRules
from tst_bench.datasets.synthetic import SyntheticSpec, generate
from tst_bench.errors import InputError

from .helpers import write_jsonl

GOOD_MC = {"question": "Pick one", "options": ["x", "y", "z"], "answer": "A"}

SHAREGPT_ROW = {
    "conversations": [
        {
            "from": "human",
            "value": "<video>\nHow many red socks are above the fireplace?\nOptions:\nA. 1.\nB. 4.\n"
            "C. 2.\nD. 3.\nAnswer with the option's letter from the given choices directly.",
        },
        {"from": "gpt", "value": "D"},
    ],
    "extras": {"idx": 2, "question_type": "counting"},
}


def test_sharegpt_row_round_trips_to_the_same_prompt(tmp_path):
    dataset = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", [SHAREGPT_ROW])))
    (record,) = dataset.records
    assert record.id == "2"
    assert record.question == "How many red socks are above the fireplace?"
    assert record.options == ["1.", "4.", "2.", "3."]
    assert (record.answer, record.format) == ("D", "mc")
    assert record.groups == {"question_type": "counting"}
    assert blind_instruction(record) == SHAREGPT_ROW["conversations"][0]["value"].removeprefix("<video>\n")


def test_alpaca_and_generic_rows(tmp_path):
    rows = [
        {"instruction": "Which is a fruit?\nA. apple\nB. brick", "input": "", "output": "(A)"},
        {"id": "g1", "question": "What colour?", "choices": ["A. red", "B. blue"], "gt_idx": 1},
        {
            "id": "g2",
            "question": "How far is it in metres?",
            "answer": 3.5,
            "task": "distance",
            "format": "num",
        },
        {"id": "g3", "question": "Name the city.", "answer": "Paris", "format": "oe"},
        {"id": "g4", "question": "Pick one", "options": ["x", "y", "z"], "answer": "z"},
    ]
    records = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", rows))).records
    assert [(r.format, r.answer) for r in records] == [
        ("mc", "A"),
        ("mc", "B"),
        ("num", "3.5"),
        ("oe", "Paris"),
        ("mc", "C"),
    ]
    assert records[1].options == ["red", "blue"]
    assert records[2].groups == {"task": "distance"}


def test_csv_and_parquet(tmp_path):
    frame = pd.DataFrame(
        {
            "id": ["a", "b"],
            "question": ["Q one?", "Q two?"],
            "options": [json.dumps(["x", "y"]), json.dumps(["u", "v", "w"])],
            "answer": ["B", "C"],
            "category": ["k1", "k2"],
        }
    )
    frame.to_csv(tmp_path / "d.csv", index=False)
    parquet = frame.assign(options=[["x", "y"], ["u", "v", "w"]])
    parquet.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        records = load_dataset(str(tmp_path / name)).records
        assert [(r.id, r.options, r.answer) for r in records] == [
            ("a", ["x", "y"], "B"),
            ("b", ["u", "v", "w"], "C"),
        ]
        assert records[1].groups == {"category": "k2"}


def test_mmlu_style_option_columns_are_read_as_options(tmp_path):
    """CSV/parquet with option columns A..J: options, not an open-ended question (was: exact match)."""
    frame = pd.DataFrame(
        {
            "question": ["2 + 2 = ?", "Capital of France?", "Pick the vowel"],
            "A": ["3", "Berlin", "b"],
            "B": ["4", "Paris", "e"],
            "C": ["5", "Rome", "k"],
            "D": ["6", "Madrid", ""],
            "answer": ["B", "Paris", "(B)"],
            "subject": ["math", "geo", "letters"],
        }
    )
    frame.to_csv(tmp_path / "mmlu.csv", index=False)
    frame.to_parquet(tmp_path / "mmlu.parquet")
    for name in ("mmlu.csv", "mmlu.parquet"):
        records = load_dataset(str(tmp_path / name)).records
        assert [(r.format, r.options, r.answer) for r in records] == [
            ("mc", ["3", "4", "5", "6"], "B"),
            ("mc", ["Berlin", "Paris", "Rome", "Madrid"], "B"),
            ("mc", ["b", "e", "k"], "B"),
        ]
        assert records[0].groups == {"subject": "math"} and "A" not in records[0].metadata


def test_answers_name_exactly_one_option(tmp_path):
    rows = [
        {"id": "text", "question": "Which pet?", "options": ["A cat", "A dog"], "answer": "A dog"},
        {"id": "letter", "question": "Which pet?", "options": ["cat", "dog"], "answer": "The answer is B"},
        {"id": "index", "question": "Which pet?", "options": ["B", "A"], "gt_idx": 0},
        {"id": "number", "question": "How many?", "options": ["1", "4", "2"], "answer": 2},
    ]
    records = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", rows))).records
    assert [r.answer for r in records] == ["B", "B", "A", "C"]
    ambiguous = {"id": "x", "question": "Which note?", "options": ["C", "A", "B"], "answer": "C"}
    with pytest.raises(InputError, match="names several options: letter C and the text of option A"):
        load_dataset(str(write_jsonl(tmp_path / "a.jsonl", [ambiguous])))


def test_rows_without_options_are_open_or_numeric_only_when_declared(tmp_path):
    rows = [{"id": "n", "question": "How many chairs?", "answer": "3"}]
    path = str(write_jsonl(tmp_path / "d.jsonl", rows))
    with pytest.raises(InputError, match="row 1: field 'options': no options"):
        load_dataset(path)
    assert load_dataset(path, rules=RowRules(without_options="num")).records[0].format == "num"
    assert load_dataset(path, rules=RowRules(without_options="oe")).records[0].format == "oe"
    declared = write_jsonl(tmp_path / "own.jsonl", [{**rows[0], "format": "oe"}])
    assert load_dataset(str(declared), rules=RowRules(without_options="num")).records[0].format == "oe"
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [rows[0], {**GOOD_MC, "id": "m"}])
    assert [r.format for r in load_dataset(str(mixed), rules=RowRules(without_options="num")).records] == [
        "num",
        "mc",
    ]


def test_duplicate_options_are_an_error_unless_the_command_keeps_them(tmp_path, caplog):
    row = {
        "id": "d",
        "question": "Which man?",
        "options": ["The shortest man.", "the shortest  man.", "x"],
        "answer": "B",
    }
    path = str(write_jsonl(tmp_path / "d.jsonl", [row]))
    with pytest.raises(InputError, match="row 1: field 'options': options A and B are the same"):
        load_dataset(path)
    (record,) = load_dataset(path, rules=RowRules(allow_duplicate_options=True)).records
    assert record.answer == "B"
    assert "row 1: field 'options': options A and B are the same" in caplog.text and "kept" in caplog.text
    by_text = write_jsonl(tmp_path / "t.jsonl", [{**row, "answer": "The shortest man."}])
    with pytest.raises(InputError, match="is the text of options A and B; give the letter"):
        load_dataset(str(by_text), rules=RowRules(allow_duplicate_options=True))


def test_limit_and_unique_ids(tmp_path):
    rows = [{"id": str(i), "question": f"q{i}", "options": ["a", "b"], "answer": "A"} for i in range(5)]
    assert len(load_dataset(str(write_jsonl(tmp_path / "d.jsonl", rows)), limit=3).records) == 3


def test_limit_counts_records_not_lines(tmp_path):
    rows = [{"id": str(i), "question": f"q{i}", "options": ["a", "b"], "answer": "A"} for i in range(5)]
    spaced = write_jsonl(tmp_path / "spaced.jsonl", ["", rows[0], "", "  ", *rows[1:]])
    assert [r.id for r in load_dataset(str(spaced), limit=3).records] == ["0", "1", "2"]
    # a bad row after the limit is never read, counted in records as well
    bad = write_jsonl(tmp_path / "bad_after.jsonl", [rows[0], "", rows[1], "", "{"])
    assert [r.id for r in load_dataset(str(bad), limit=2).records] == ["0", "1"]
    # the hub path counts records over all of a split's files
    folder = tmp_path / "repo"
    folder.mkdir()
    write_jsonl(folder / "test-00000-of-00002.jsonl", [rows[0], ""])
    write_jsonl(folder / "test-00001-of-00002.jsonl", ["", *rows[1:]])
    records = load_dataset(f"hf:someone/generic?file={folder}", limit=3).records
    assert [r.id for r in records] == ["0", "1", "2"]


def test_synthetic_generator_is_seeded_and_balanced():
    first = generate(SyntheticSpec(kind="shortcut", rows=600, seed=3))
    assert first == generate(SyntheticSpec(kind="shortcut", rows=600, seed=3))
    assert first != generate(SyntheticSpec(kind="shortcut", rows=600, seed=4))
    letters = [r.answer for r in first]
    assert all(0.18 < letters.count(letter) / 600 < 0.32 for letter in "ABCD")
    shortcut = [r for r in first if r.metadata["shortcut"]]
    assert 0.3 < len(shortcut) / 600 < 0.42  # fraction 0.4 x strength 0.9
    # every shortcut row answers with its cue scene's letter
    cue_letter = {"in the kitchen": "A", "at the beach": "B", "in the garage": "C", "at the park": "D"}
    assert all(cue_letter[r.metadata["scene"]] == r.answer for r in shortcut)


def test_control_and_numeric_variants():
    control = generate(SyntheticSpec(kind="control", rows=300))
    assert not any(r.metadata["shortcut"] for r in control)
    assert any(r.metadata["has_cue"] for r in control)
    numeric = generate(SyntheticSpec(kind="numeric", rows=50))
    assert {r.format for r in numeric} == {"num"}
    assert SyntheticSpec().expected_ceiling() == pytest.approx(0.4 * 0.9 + 0.6 * 0.25)


def test_synthetic_spec_parameters():
    spec = parse_synthetic_spec("synthetic:shortcut?rows=50&seed=2&strength=0.8&fraction=0.5")
    assert (spec.rows, spec.seed, spec.strength, spec.shortcut_fraction) == (50, 2, 0.8, 0.5)
    with pytest.raises(InputError, match="unknown parameter"):
        parse_synthetic_spec("synthetic:shortcut?size=5")
    with pytest.raises(InputError, match="unknown synthetic dataset"):
        parse_synthetic_spec("synthetic:nope")
