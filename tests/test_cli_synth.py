import json

from tst_bench.cli import main
from tst_bench.datasets import load_dataset


def test_synth_writes_a_loadable_file_with_shortcut_flags(tmp_path):
    out = tmp_path / "shortcut.jsonl"
    assert main(["synth", "--kind", "shortcut", "--rows", "50", "--seed", "2", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 50
    assert {"id", "question", "options", "answer", "format", "shortcut", "has_cue"} <= rows[0].keys()
    records = load_dataset(str(out)).records
    assert records == load_dataset("synthetic:shortcut?rows=50&seed=2").records


def test_synth_rejects_bad_parameters(tmp_path, caplog):
    out = tmp_path / "bad.jsonl"
    assert main(["synth", "--kind", "shortcut", "--rows", "0", "--out", str(out)]) == 2
    assert "rows must be positive" in caplog.text
    assert not out.exists()
