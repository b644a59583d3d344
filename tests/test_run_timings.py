"""Run-level timings in result.json: wall time over every invocation of a resumed run, and the
parts outside the folds (the zero-shot pass and the engine build inside it)."""

import json
import time

import pytest

from tst_bench.config import RunConfig
from tst_bench.engine import run_tst
from tst_bench.folds import FoldSpec
from tst_bench.observers import FoldObserver

from .engines import require_vllm
from .helpers import run_cli

FOREST = {"backend": "rf", "trainer": "rf", "folds": 3}
PAUSE_S = 1.5


class InterruptSecondFold(FoldObserver):
    """Ctrl-C as the second fold starts, after a pause that makes the first invocation's wall
    time stand out."""

    def fold_started(self, spec: FoldSpec) -> None:
        if spec.fold == 1:
            time.sleep(PAUSE_S)
            raise KeyboardInterrupt


def test_wall_time_adds_up_over_the_invocations_of_a_resumed_run(tmp_path):
    config = RunConfig(dataset="synthetic:shortcut?rows=60&seed=3", out=tmp_path / "run", **FOREST)
    with pytest.raises(KeyboardInterrupt):
        run_tst(config, observers=[InterruptSecondFold()], progress=False)
    first = json.loads((tmp_path / "run" / "run.json").read_text())["timings"]
    assert first["invocations"] == 1 and first["wall_s"] > PAUSE_S

    resumed = run_tst(config, progress=False)
    timings = resumed.result.timings
    assert timings is not None and timings.invocations == 2
    assert resumed.result.wall_s == timings.wall_s > resumed.seconds + PAUSE_S  # not the last call alone
    assert 0 < timings.wall_s - first["wall_s"] <= resumed.seconds
    assert timings.folds_s > first["folds_s"] and timings.prepare_s > first["prepare_s"]

    again = run_tst(config, progress=False)  # nothing left to do: the run's timings stay
    assert again.result.timings == timings and again.result.wall_s == resumed.result.wall_s


@pytest.mark.slow
def test_the_engine_build_of_the_zero_shot_pass_is_in_result_json(tmp_path):
    require_vllm()
    out = tmp_path / "run"
    engines = ("--backend", "vllm", "--trainer", "peft", "--folds", "2")
    completed = run_cli("run", "--dataset", "synthetic:shortcut?rows=40&seed=0", *engines, "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    result = json.loads((out / "result.json").read_text())
    timings = result["timings"]
    assert timings["invocations"] == 1 and result["wall_s"] == timings["wall_s"]
    assert timings["zero_shot_s"] > 0 and timings["events"]["engine_build"] > 0
    assert timings["zero_shot_s"] >= timings["events"]["engine_build"]
    parts = sum(timings[name] for name in ("prepare_s", "start_s", "zero_shot_s", "folds_s"))
    assert parts <= timings["wall_s"]
    assert all("engine_build" not in fold["timings"]["events"] for fold in result["folds"])
