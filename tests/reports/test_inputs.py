"""Loading report inputs: run directories, pytest-benchmark JSON, folders of them, bad files."""

import json
import logging
import shutil
from pathlib import Path

import pytest

from tst_bench.errors import InputError
from tst_bench.reports import load_inputs
from tst_bench.schemas import SampleResult

from ..helpers import run_cli
from .conftest import copy_run, speedup_series, with_measurements

SMALL = "synthetic:shortcut?rows=60&seed=1"


def test_run_directory_gives_result_samples_and_question_text(recorded):
    (benchmark,) = load_inputs([recorded.run_dir])
    assert benchmark.name == "run"
    assert benchmark.result == recorded.result
    lines = (recorded.run_dir / "samples.jsonl").read_text().splitlines()
    assert [s.id for s in benchmark.samples] == [SampleResult.model_validate_json(line).id for line in lines]
    assert benchmark.questions is not None and benchmark.questions_note is None
    for sample in benchmark.samples:
        assert benchmark.questions[sample.id].answer == sample.target
    assert benchmark.metadata.empty and benchmark.timing is None and benchmark.speedup is None


def test_result_json_path_is_the_same_as_its_directory(recorded):
    (from_file,) = load_inputs([recorded.run_dir / "result.json"], with_questions=False)
    (from_dir,) = load_inputs([recorded.run_dir], with_questions=False)
    assert from_file == from_dir


def test_benchmark_json_carries_result_timing_metadata_and_samples(recorded):
    (benchmark,) = load_inputs([recorded.benchmark_json])
    assert benchmark.name == "test_tst_shortcut"
    assert benchmark.result == recorded.result
    assert benchmark.timing.rounds == 1 and benchmark.timing.mean > 0
    assert benchmark.metadata.machine["python_version"]
    assert "id" in benchmark.metadata.commit
    assert benchmark.samples is not None and len(benchmark.samples) == recorded.result.n_samples
    assert benchmark.questions is not None


def test_in_memory_document_and_benchmark_folder(recorded, tmp_path):
    document = json.loads(recorded.benchmark_json.read_text())
    (from_memory,) = load_inputs([document], with_questions=False)
    assert from_memory.result == recorded.result
    folder = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True)
    shutil.copy(recorded.benchmark_json, folder / "0001_a.json")
    with_measurements(recorded, folder / "0002_b.json")
    loaded = load_inputs([tmp_path / ".benchmarks"], with_questions=False)
    assert [b.source.rsplit("/", 1)[-1] for b in loaded] == ["0001_a.json", "0002_b.json"]
    assert loaded[0].speedup is None and loaded[1].speedup.counts == [1, 2, 4]


def test_benchmark_without_tst_result_is_timing_only(recorded, tmp_path):
    document = json.loads(recorded.benchmark_json.read_text())
    document["benchmarks"][0]["extra_info"] = {"score": 0.5}
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(document))
    (benchmark,) = load_inputs([path])
    assert benchmark.result is None and benchmark.samples is None
    assert benchmark.timing.mean == document["benchmarks"][0]["stats"]["mean"]


def test_missing_samples_and_dataset_degrade_to_notes(recorded, tmp_path):
    result = recorded.result
    config = {**result.config, "dataset": str(tmp_path / "gone.jsonl")}
    run = copy_run(recorded.run_dir, tmp_path / "moved", result.model_copy(update={"config": config}))
    (benchmark,) = load_inputs([run])
    assert benchmark.questions is None
    assert "gone.jsonl" in benchmark.questions_note and "did not load" in benchmark.questions_note

    (run / "samples.jsonl").unlink()
    (benchmark,) = load_inputs([run])
    assert benchmark.samples is None and "samples.jsonl is missing" in benchmark.samples_note


def test_changed_dataset_hides_question_text(recorded, tmp_path):
    run = copy_run(recorded.run_dir, tmp_path / "changed")
    lines = (run / "samples.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["target"] = "D" if first["target"] != "D" else "A"
    (run / "samples.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    (benchmark,) = load_inputs([run])
    assert benchmark.questions is None
    assert "changed since the run" in benchmark.questions_note and first["id"] in benchmark.questions_note


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file or directory"),
        ("{not json", "not valid JSON"),
        ('{"hello": 1}', "not a tst-bench result.json nor a pytest-benchmark JSON file"),
        ('{"benchmarks": [{"stats": {}}]}', "field 'benchmarks.0.name'"),
        ('{"metric": "accuracy", "folds": []}', "not a valid TsTResult"),
    ],
)
def test_bad_files_are_input_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "input.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as error:
        load_inputs([path])
    assert str(path) in str(error.value) and message in str(error.value)


def test_inconsistent_speedup_series_is_rejected(recorded, tmp_path):
    broken = speedup_series()
    broken["seconds"] = broken["seconds"][:2]
    path = with_measurements(recorded, tmp_path / "broken.json", speedup=broken)
    with pytest.raises(InputError, match=r"tst_speedup.*same length"):
        load_inputs([path])


def test_unfinished_run_directory_says_how_to_finish(tmp_path):
    run = tmp_path / "unfinished"
    (run / "folds").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "folds" / "r0_f0.json").write_text("{}")
    with pytest.raises(InputError, match=r"no result\.json: the run has not finished \(1 folds saved\)"):
        load_inputs([run])
    with pytest.raises(InputError, match="no inputs given"):
        load_inputs([])


def full_copy(run: Path, target: Path) -> Path:
    """A run directory as `tst-bench run` leaves it, fold files included."""
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("adapters"))
    return target


def test_a_folder_of_runs_at_any_depth_results_prunes_and_benchmark_files(recorded, tmp_path, caplog):
    root = tmp_path / "runs"
    full_copy(recorded.run_dir, root / "a")
    full_copy(recorded.run_dir, root / "deep" / "er" / "b")
    tst_results = full_copy(recorded.run_dir, root / "results" / "test_mine.py-test_tst" / "run0")
    (tst_results / "tst_record.json").write_text(json.dumps({"nodeid": "test_mine.py::test_tst"}))
    prune = root / "prune"
    full_copy(recorded.run_dir, prune / "runs" / "2bb56347a672ecfc")
    (prune / "ibp").mkdir()
    for document in ("prune.json", "comparison.json", "ibp/trajectory.json"):
        (prune / document).write_text('{"fingerprint": "x", "rounds": []}')
    unfinished = root / "unfinished"
    (unfinished / "folds").mkdir(parents=True)
    (unfinished / "run.json").write_text("{}")
    shutil.copy(recorded.run_dir / "folds" / "r0_f0.json", unfinished / "folds")
    (root / ".benchmarks" / "Linux").mkdir(parents=True)
    shutil.copy(recorded.benchmark_json, root / ".benchmarks" / "Linux" / "0001_a.json")

    with caplog.at_level(logging.WARNING, logger="tst_bench"):
        loaded = load_inputs([root], with_questions=False)
    assert [benchmark.name for benchmark in loaded] == [
        "test_tst_shortcut",
        "a",
        "deep/er/b",
        "prune/runs/2bb56347a672ecfc",
        "results/test_mine.py-test_tst/run0",
    ]
    assert all(benchmark.result == recorded.result for benchmark in loaded)
    assert f"skipped {unfinished}: no result.json: the run has not finished (1 folds saved)" in caplog.text


def test_a_folder_without_runs_or_benchmark_files_is_an_input_error(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "settings.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match=r"neither a run directory .* nor a folder with run directories"):
        load_inputs([tmp_path])


@pytest.mark.slow
def test_report_command_on_a_folder_of_forest_runs_and_a_prune(tmp_path):
    runs = tmp_path / "runs"
    forest = ("--backend", "rf", "--trainer", "rf", "--folds", "3", "--no-progress")
    for seed, out in (("0", "seed0"), ("1", "more/seed1")):
        completed = run_cli("run", "--dataset", SMALL, *forest, "--seed", seed, "--out", str(runs / out))
        assert completed.returncode == 0, completed.stderr
    prune = ("--budget", "10%", "--batch-size", "10%", "--no-control")
    completed = run_cli("prune", "--dataset", SMALL, *forest, *prune, "--out", str(runs / "prune"))
    assert completed.returncode == 0, completed.stderr
    completed = run_cli("report", str(runs), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    markdown = (tmp_path / "report" / "report.md").read_text()
    for name in ("seed0", "more/seed1", "prune/runs/"):
        assert name in markdown
