"""`hf:` specs: CV-Bench, VSI-Bench, MMMU and Video-MME fixtures in the hub's schema and layout, offline."""

import json
import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tst_bench.cli import main
from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset
from tst_bench.datasets.hub import parse_hub_spec, select_files
from tst_bench.engine import run_tst
from tst_bench.errors import InputError

from .helpers import run_cli, write_jsonl

IMAGE = {"bytes": b"\x89PNG\r\n\x1a\n" + bytes(64), "path": "img.png"}


def cvbench_rows(count=3):
    tasks = [("2D", "Count", "ADE20K"), ("2D", "Relation", "COCO"), ("3D", "Depth", "Omni3D")]
    rows = []
    for idx in range(count):
        kind, task, source = tasks[idx % 3]
        rows.append(
            {
                "idx": idx,
                "type": kind,
                "task": task,
                "question": f"How many chairs are in image {idx}?",
                "choices": ["3", "2", "1", "0"] if task == "Count" else ["left", "right"],
                "answer": "(B)" if task == "Count" else "(A)",
                "prompt": "How many ... Select from the following choices.\n(A) 3\n(B) 2",
                "filename": f"img/{kind}/{task.lower()}/{idx}.png",
                "source": source,
                "source_dataset": source,
                "target_class": None,
            }
        )
    return rows


VSIBENCH_ROWS = [
    {
        "id": 1,
        "dataset": "arkitscenes",
        "scene_name": "41069025",
        "question_type": "object_counting",
        "question": "How many chair(s) are in this room?",
        "ground_truth": "4",
        "options": None,
    },
    {
        "id": 2,
        "dataset": "scannet",
        "scene_name": "scene0011_00",
        "question_type": "object_rel_direction_easy",
        "question": "If I am standing by the sofa and facing the table, is the lamp to my left or right?",
        "ground_truth": "B",
        "options": ["A. left", "B. right"],
    },
    {
        "id": 3,
        "dataset": "scannetpp",
        "scene_name": "0a5c0136",
        "question_type": "room_size_estimation",
        "question": "What is the size of this room (in square meters)?",
        "ground_truth": "23.5",
        "options": [],
    },
]

MMMU_ROWS = {
    "Accounting": [
        {
            "id": "validation_Accounting_1",
            "question": "<image 1> What is the NPV of the project?",
            "options": "['$6', '$7', '$8']",
            "explanation": "",
            "image_1": IMAGE,
            "img_type": "['Tables']",
            "answer": "B",
            "topic_difficulty": "Medium",
            "question_type": "multiple-choice",
            "subfield": "Managerial Accounting",
        },
        {
            "id": "validation_Accounting_2",
            "question": "Compute the ratio shown in <image 1>.",
            "options": "[]",
            "explanation": "",
            "image_1": IMAGE,
            "img_type": "['Tables']",
            "answer": "1.25",
            "topic_difficulty": "Hard",
            "question_type": "open",
            "subfield": "Financial Accounting",
        },
    ],
    "Art_Theory": [
        {
            "id": "validation_Art_Theory_1",
            "question": "Who painted <image 1>?",
            "options": "[]",
            "explanation": "",
            "image_1": IMAGE,
            "img_type": "['Paintings']",
            "answer": "['Leonardo da Vinci', 'Leonardo']",
            "topic_difficulty": "Easy",
            "question_type": "open",
            "subfield": "Art History",
        }
    ],
}

VIDEOMME_ROWS = [
    {
        "video_id": "001",
        "duration": "short",
        "domain": "Knowledge",
        "sub_category": "Humanity & History",
        "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
        "videoID": "fFjv93ACGo8",
        "question_id": "001-1",
        "task_type": "Counting Problem",
        "question": "When demonstrating the Germany modern Christmas tree, what is most numerous?",
        "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three kinds are of the same number."],
        "answer": "C",
    }
]


def write_parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture
def hub_copies(tmp_path):
    """Local folders laid out like the four hub repositories."""
    cv = tmp_path / "CV-Bench"
    cv.mkdir()
    write_jsonl(cv / "test.jsonl", cvbench_rows())
    write_parquet(cv / "test.parquet", [{**row, "image": IMAGE} for row in cvbench_rows()])
    write_parquet(tmp_path / "VSI-Bench" / "test-00000-of-00001.parquet", VSIBENCH_ROWS)
    for subject, rows in MMMU_ROWS.items():
        write_parquet(tmp_path / "MMMU" / subject / "validation-00000-of-00001.parquet", rows)
        write_parquet(tmp_path / "MMMU" / subject / "dev-00000-of-00001.parquet", rows[:1])
    write_parquet(tmp_path / "Video-MME" / "videomme" / "test-00000-of-00001.parquet", VIDEOMME_ROWS)
    return tmp_path


def test_cvbench_maps_choices_and_parenthesised_answers(hub_copies):
    dataset = load_dataset(f"hf:nyu-visionx/CV-Bench?file={hub_copies / 'CV-Bench'}")
    first, second, third = dataset.records
    assert dataset.name == "hf:nyu-visionx/CV-Bench split=test"
    assert (first.id, first.options, first.answer, first.format) == ("0", ["3", "2", "1", "0"], "B", "mc")
    assert first.groups == {"task": "Count", "type": "2D", "source": "ADE20K"}
    assert (second.answer, third.groups["type"]) == ("A", "3D")
    # the parquet copy (with its image column) maps to the same records
    parquet = load_dataset(f"hf:nyu-visionx/CV-Bench?file={hub_copies / 'CV-Bench' / 'test.parquet'}")
    assert parquet.records == dataset.records


def test_vsibench_numeric_questions_have_no_options_and_are_scored_by_mra(hub_copies):
    records = load_dataset(f"hf:nyu-visionx/VSI-Bench?file={hub_copies / 'VSI-Bench'}").records
    counting, direction, room = records
    assert (counting.format, counting.options, counting.answer) == ("num", [], "4")
    assert (direction.format, direction.options, direction.answer) == ("mc", ["left", "right"], "B")
    assert room.format == "num" and room.groups == {
        "question_type": "room_size_estimation",
        "dataset": "scannetpp",
    }


def test_mmmu_list_literal_options_open_questions_and_subjects(hub_copies):
    records = load_dataset(f"hf:MMMU/MMMU?file={hub_copies / 'MMMU'}").records
    by_id = {record.id: record for record in records}
    assert len(records) == 3  # the validation split only, over every subject folder
    choice = by_id["validation_Accounting_1"]
    assert (choice.options, choice.answer, choice.format) == (["$6", "$7", "$8"], "B", "mc")
    assert choice.groups["subject"] == "Accounting" and choice.groups["question_type"] == "multiple-choice"
    assert (by_id["validation_Accounting_2"].format, by_id["validation_Accounting_2"].answer) == (
        "num",
        "1.25",
    )
    painter = by_id["validation_Art_Theory_1"]
    assert (painter.format, painter.answer) == ("oe", "Leonardo da Vinci")
    assert json.loads(painter.metadata["accepted_answers"]) == ["Leonardo da Vinci", "Leonardo"]
    assert painter.groups["subject"] == "Art_Theory"
    one_subject = load_dataset(f"hf:MMMU/MMMU?file={hub_copies / 'MMMU'}&config=Art_Theory&split=dev")
    assert [r.id for r in one_subject.records] == ["validation_Art_Theory_1"]


def test_videomme_letters_and_groups(hub_copies):
    (record,) = load_dataset(f"hf:lmms-lab/Video-MME?file={hub_copies / 'Video-MME'}").records
    assert record.id == "001-1"
    assert record.options == ["Apples.", "Candles.", "Berries.", "The three kinds are of the same number."]
    assert record.answer == "C"
    assert record.groups == {"task_type": "Counting Problem", "domain": "Knowledge", "duration": "short"}


def test_format_option_maps_a_mirror_and_group_by_overrides(hub_copies):
    spec = f"hf:someone/cv-bench-mirror?format=cvbench&file={hub_copies / 'CV-Bench'}"
    records = load_dataset(spec, group_columns=("source",)).records
    assert records[0].groups == {"source": "ADE20K"}


def test_split_files_are_picked_from_repository_listings():
    cv = ["README.md", "test.jsonl", "test.parquet", "img/2D/count/1.png"]
    assert select_files(cv, "test", None) == ["test.jsonl"]
    vsi = ["arkitscenes.zip", "test-00000-of-00001.parquet", "test_debiased.parquet"]
    assert select_files(vsi, "test", None) == ["test-00000-of-00001.parquet"]
    mmmu = [
        f"{s}/{split}-00000-of-00001.parquet"
        for s in ("Accounting", "Art")
        for split in ("dev", "validation")
    ]
    assert select_files(mmmu, "validation", None) == [
        "Accounting/validation-00000-of-00001.parquet",
        "Art/validation-00000-of-00001.parquet",
    ]
    assert select_files(mmmu, "validation", "Art") == ["Art/validation-00000-of-00001.parquet"]
    assert select_files(["videomme/test-00000-of-00001.parquet", "videos_chunked_01.zip"], "test", "videomme")
    assert select_files(cv, "validation", None) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hf:CV-Bench", "expected hf:OWNER/NAME"),
        ("hf:nyu-visionx/CV-Bench?splitt=test", "unknown parameter 'splitt'"),
        ("hf:a/b?format=cvbenchh", "unknown format 'cvbenchh'"),
        ("hf:a/b?file=/no/such/file.jsonl", "not found"),
    ],
)
def test_bad_hub_specs(spec, message):
    with pytest.raises(InputError, match=message):
        parse_hub_spec(spec)


def test_broken_rows_name_the_row_and_field(tmp_path):
    hidden = [{**MMMU_ROWS["Accounting"][0], "answer": "?"}]
    path = write_parquet(tmp_path / "test.parquet", hidden)
    with pytest.raises(InputError, match=r"row 1: field 'answer': mmmu: hidden .*split=validation"):
        load_dataset(f"hf:MMMU/MMMU?file={path}")
    code = [{**MMMU_ROWS["Accounting"][0], "options": "__import__('os').system('echo owned')"}]
    path = write_parquet(tmp_path / "code.parquet", code)
    with pytest.raises(InputError, match=r"row 1: field 'options': mmmu: expected a list of options"):
        load_dataset(f"hf:MMMU/MMMU?file={path}")
    missing = write_jsonl(tmp_path / "cv.jsonl", [{**cvbench_rows(1)[0], "choices": None}])
    with pytest.raises(InputError, match=r"row 1: field 'choices': cvbench: missing"):
        load_dataset(f"hf:nyu-visionx/CV-Bench?file={missing}")


def test_hub_unreachable_is_a_clear_input_error(tmp_path):
    env_home = tmp_path / "hf-home"
    out = tmp_path / "out"
    completed = run_cli_offline(["run", "--dataset", "hf:nyu-visionx/CV-Bench", "--out", str(out)], env_home)
    assert completed.returncode == 2
    assert "hf:nyu-visionx/CV-Bench: cannot fetch split 'test'" in completed.stderr
    assert "hf:nyu-visionx/CV-Bench?file=PATH" in completed.stderr
    assert not out.exists()


def run_cli_offline(args, hf_home):
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
    return subprocess.run(
        [sys.executable, "-m", "tst_bench.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_tst_rf_runs_on_a_hub_fixture(tmp_path):
    rows = cvbench_rows(60)
    path = write_jsonl(tmp_path / "test.jsonl", rows)
    config = RunConfig(
        dataset=f"hf:nyu-visionx/CV-Bench?file={path}",
        backend="rf",
        trainer="rf",
        zero_shot=False,
        folds=3,
        out=tmp_path / "run",
    )
    result = run_tst(config, progress=False).result
    assert set(result.by_group) == {"task", "type", "source"}
    assert set(result.by_group["task"]) == {"Count", "Relation", "Depth"}
    # Count questions always answer B and the others A: the rf diagnostic must see that
    assert result.score > 0.9


def test_cli_run_on_a_hub_fixture_exits_0(tmp_path):
    spec = f"hf:nyu-visionx/CV-Bench?file={write_jsonl(tmp_path / 'cv.jsonl', cvbench_rows(30))}"
    completed = run_cli("run", "--dataset", spec, "--backend", "rf", "--trainer", "rf", "--no-zero-shot",
                        "--folds", "3", "--out", str(tmp_path / "out"))  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert json.loads((tmp_path / "out" / "result.json").read_text())["dataset"].startswith("hf:nyu-visionx")


def test_bad_spec_through_the_cli_exits_2(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="tst_bench"):
        code = main(["run", "--dataset", "hf:x", "--out", str(tmp_path / "o")])
    assert code == 2 and "expected hf:OWNER/NAME" in caplog.text
