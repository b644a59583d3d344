"""Opening a run or prune directory by fingerprint: resume the same work, refuse other work, overwrite."""

import json
import logging

import pytest

from tst_bench.errors import InputError
from tst_bench.folds import FoldSpec
from tst_bench.ibp.runner import PRUNE_DIRECTORY
from tst_bench.store import RUN_DIRECTORY, RunStore, fold_key, open_fingerprinted

RUN_CONFIG = {"dataset": "d.jsonl", "model": "tiny"}
PRUNE_CONFIG = {"run": {"dataset": "d.jsonl"}, "budget": "40%"}
KINDS = [
    (RUN_DIRECTORY, RUN_CONFIG, "dataset 'd.jsonl', model 'tiny'"),
    (PRUNE_DIRECTORY, PRUNE_CONFIG, "dataset 'd.jsonl'"),
]


def tree(root):
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.parametrize(("kind", "config", "named"), KINDS, ids=["run", "prune"])
def test_same_work_resumes_and_other_work_is_refused_untouched(kind, config, named, tmp_path, caplog):
    root = tmp_path / "out"
    open_fingerprinted(root, kind, "aaaa", config, overwrite=False)
    marker = root / kind.marker
    assert json.loads(marker.read_text()) == {"fingerprint": "aaaa", "config": config}
    (root / kind.owned[1]).mkdir()
    with caplog.at_level(logging.INFO, logger="tst_bench"):
        open_fingerprinted(root, kind, "aaaa", config, overwrite=False)
    assert f"resuming the {kind.name} in {root}" in caplog.text
    before = tree(root)
    with pytest.raises(
        InputError,
        match=rf"holds a different {kind.name} \({named}\): same options, but the dataset's content",
    ):
        open_fingerprinted(root, kind, "bbbb", config, overwrite=False)
    assert tree(root) == before
    assert json.loads(marker.read_text())["fingerprint"] == "aaaa"


@pytest.mark.parametrize(("kind", "config", "named"), KINDS, ids=["run", "prune"])
def test_a_folder_with_other_content_is_refused(kind, config, named, tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=f"not a tst-bench {kind.name} directory"):
        open_fingerprinted(root, kind, "aaaa", config, overwrite=False)
    assert tree(root) == ["notes.txt"]


def test_overwrite_deletes_only_what_the_run_owns(tmp_path):
    root = tmp_path / "out"
    store = RunStore.open(root, "aaaa", RUN_CONFIG)
    for path in (store.result_path, store.samples_path, store.zero_shot_path, store.folds_dir / "r0_f0.json"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    store.adapters_dir.mkdir()
    (root / "notes.txt").write_text("mine")
    RunStore.open(root, "bbbb", RUN_CONFIG, overwrite=True)
    assert tree(root) == ["adapters", "notes.txt", "run.json"]
    assert json.loads((root / "run.json").read_text())["fingerprint"] == "bbbb"
    assert not list(root.glob(".*.tmp"))


def test_an_unreadable_marker_is_an_input_error(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "run.json").write_text('{"fingerprint": ')
    with pytest.raises(InputError, match=r"run\.json is unreadable .* pass --overwrite"):
        RunStore.open(root, "aaaa", RUN_CONFIG)
    (root / "run.json").write_text("[1]")
    with pytest.raises(InputError, match=r"run\.json is not a tst-bench marker"):
        RunStore.open(root, "aaaa", RUN_CONFIG)
    RunStore.open(root, "aaaa", RUN_CONFIG, overwrite=True)
    assert json.loads((root / "run.json").read_text())["fingerprint"] == "aaaa"


def test_a_fold_has_one_name_in_the_plan_and_on_disk(tmp_path):
    spec = FoldSpec(repeat=1, fold=2, n_folds=3, train_ids=("a",), test_ids=("b",))
    store = RunStore(tmp_path)
    assert spec.key == fold_key(1, 2) == "r1_f2"
    assert store.fold_path(spec) == tmp_path / "folds" / "r1_f2.json"
    assert store.adapter_dir(spec) == tmp_path / "adapters" / "r1_f2"
    assert not store.is_run() and store.saved_fold_paths() == []
    RunStore.open(tmp_path, "aaaa", RUN_CONFIG)
    assert store.is_run()


def test_a_different_run_names_the_fields_that_differ(tmp_path):
    root = tmp_path / "out"
    before = {**RUN_CONFIG, "device": "cuda", "folds": 5, "workers": 1, "trainer_options": {"lr": 0.1}}
    RunStore.open(root, "aaaa", before)
    now = {**before, "device": "cpu", "folds": 3, "workers": 4, "trainer_options": {"lr": 0.2, "epochs": 2}}
    with pytest.raises(InputError) as error:
        RunStore.open(root, "bbbb", now)
    assert (
        f"{root} holds a different run (dataset 'd.jsonl', model 'tiny'): device 'cuda' there, 'cpu' now;"
        " folds 5 there, 3 now; trainer_options.epochs None there, 2 now; trainer_options.lr 0.1 there,"
        " 0.2 now; choose another --out or pass --overwrite"
    ) == str(error.value)  # workers may change on a resume: not a difference
