"""Sweeps: the grid, key routing and checks, the nested choice, and real sweeps through the CLI
(TsT-RF for the machinery, the tiny LLM against standalone runs)."""

import json
from pathlib import Path

import pytest

import tst_bench.datasets  # noqa: F401  (imported before in-process pytester runs, which drop new modules)
from tst_bench.bench.entry_point import plugin_args
from tst_bench.cli import main
from tst_bench.config import RunConfig
from tst_bench.errors import InputError
from tst_bench.models import resolve_model
from tst_bench.reports.agreement import agreement
from tst_bench.store import RunStore
from tst_bench.sweep.configurations import resolve_configurations
from tst_bench.sweep.grid import configuration_name, expand, parse_grid_flags, read_grid_file
from tst_bench.sweep.nested import choose
from tst_bench.sweep.schema import SweepResult

from .helpers import run_cli

RF = ["--backend", "rf", "--trainer", "rf"]
CONTROL = "synthetic:control?rows=90&seed=3"


def read_sweep(out: Path) -> SweepResult:
    return SweepResult.model_validate_json((out / "sweep.json").read_text())


def predictions(run_dir: Path) -> dict[str, str]:
    """Every held-out prediction of a run, by sample id."""
    return {
        sample.id: sample.prediction
        for fold in RunStore(run_dir).load_saved_folds()
        for sample in fold.samples
    }


def test_grid_flags_split_on_top_level_commas_and_read_yaml():
    grid = parse_grid_flags(["learning_rate=1e-4,3e-4", "target_modules=[q_proj,v_proj],all-linear"])
    assert grid == {"learning_rate": ["1e-4", "3e-4"], "target_modules": [["q_proj", "v_proj"], "all-linear"]}
    assert parse_grid_flags(["lora_rank=8,16"]) == {"lora_rank": [8, 16]}
    for bad, named in (("lora_rank", "KEY=V1"), ("lora_rank=8,,16", "empty value"), ("x=[1,2", "unbalanced")):
        with pytest.raises(InputError, match=named):
            parse_grid_flags([bad])
    with pytest.raises(InputError, match="given twice"):
        parse_grid_flags(["lora_rank=8", "lora_rank=16"])


def test_grid_is_the_product_then_the_listed_configurations_once_each():
    points = expand({"a": [1, 2], "b": ["x", "y"]}, [{"a": 1, "b": "x"}, {"a": 9, "b": "z", "c": 3}])
    assert points == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
        {"a": 9, "b": "z", "c": 3},
    ]
    assert configuration_name({"learning_rate": "3e-4", "lora_rank": 8}) == "learning_rate=3e-4,lora_rank=8"
    assert configuration_name({"target_modules": ["q/k", "v"]}) == "target_modules=__q_k_,_v__"
    long = configuration_name({"system_prompt": "x" * 300})
    assert len(long) <= 96 and "~" in long
    with pytest.raises(InputError, match="needs a grid"):
        expand({}, [])


def test_grid_file_with_sections_or_as_a_plain_mapping(tmp_path):
    sectioned = tmp_path / "grid.yaml"
    sectioned.write_text("grid:\n  lora_rank: [8, 16]\nconfigs:\n  - {lora_rank: 8, lora_alpha: 16}\n")
    assert read_grid_file(sectioned) == ({"lora_rank": [8, 16]}, [{"lora_rank": 8, "lora_alpha": 16}])
    plain = tmp_path / "plain.yaml"
    plain.write_text("learning_rate: [1.0e-4, 3.0e-4]\nnum_epochs: 12\n")
    assert read_grid_file(plain) == ({"learning_rate": [1e-4, 3e-4], "num_epochs": [12]}, [])
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("lora_rank: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(InputError, match="not YAML"):
        read_grid_file(unsafe)
    listed = tmp_path / "listed.yaml"
    listed.write_text("configs: [3]\n")
    with pytest.raises(InputError, match="configs entry 1"):
        read_grid_file(listed)


def test_keys_go_to_the_trainer_or_else_the_predictor_and_are_checked():
    base = RunConfig(dataset="synthetic:shortcut", model="tiny", device="cpu", out=None)
    source = resolve_model("tiny")
    configurations = resolve_configurations(
        base, source, [{"learning_rate": 3e-3, "max_tokens": 8, "predictor.batch_size": 4}]
    )
    run = configurations[0].run
    assert run.trainer_options == {"learning_rate": 3e-3}
    assert run.predictor_options == {"max_tokens": 8, "batch_size": 4}
    with pytest.raises(InputError, match="neither a trainer nor a predictor option"):
        resolve_configurations(base, source, [{"learnig_rate": 1}])
    with pytest.raises(InputError, match="learning_rate='abc'"):
        resolve_configurations(base, source, [{"learning_rate": 1e-3}, {"learning_rate": "abc"}])
    given = RunConfig(
        dataset="synthetic:shortcut", model="tiny", device="cpu", trainer_options={"lora_rank": 4}
    )
    with pytest.raises(InputError, match="also given as --trainer-option lora_rank"):
        resolve_configurations(given, source, [{"lora_rank": 8}])


def test_the_best_inner_score_is_chosen_and_a_tie_goes_to_the_first():
    assert choose({"a": 0.4, "b": 0.6, "c": 0.6}) == "b"
    assert choose({"a": 0.5, "b": 0.5}) == "a"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--grid", "n_estimators=10,abc"], "n_estimators='abc'"),
        (["--grid", "no_such_option=1,2"], "no_such_option"),
        (["--grid", "n_estimators=10,20", "--trainer-option", "n_estimators=5"], "n_estimators"),
        (["--grid", "n_estimators=10,20", "--inner-folds", "1"], "--inner-folds"),
        ([], "needs a grid"),
    ],
)
def test_bad_grids_exit_2_before_any_work(tmp_path, caplog, args, named):
    out = tmp_path / "sweep"
    code = main(["sweep", "--dataset", CONTROL, *RF, "--folds", "3", "--out", str(out), *args])
    assert code == 2
    assert named in caplog.text
    assert not out.exists()


def test_rf_sweep_nested_choice_matches_the_inner_runs_and_resumes(tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--dataset", CONTROL, *RF, "--folds", "3", "--out", str(out), "--no-progress"]
    grid = ["--grid", "max_depth=2,8", "--grid", "n_estimators=20"]
    assert main([*args, *grid]) == 0
    sweep = read_sweep(out)
    assert [entry.name for entry in sweep.configs] == [
        "max_depth=2,n_estimators=20",
        "max_depth=8,n_estimators=20",
    ]
    assert sweep.best.score == max(entry.score for entry in sweep.configs) and sweep.best.optimistic
    nested = sweep.nested
    assert nested is not None and len(nested.outer) == 3 and nested.inner_folds == 3
    held_out = []
    for outer in nested.outer:
        assert outer.inner_dir is not None
        inner = {
            entry.name: json.loads((out / outer.inner_dir / entry.name / "result.json").read_text())["score"]
            for entry in sweep.configs
        }
        assert outer.inner_scores == inner and outer.chosen == choose(inner)
        chosen_run = RunStore(out / "configs" / outer.chosen)
        fold = next(
            f for f in chosen_run.load_saved_folds() if (f.repeat, f.fold) == (outer.repeat, outer.fold)
        )
        assert outer.score == fold.score
        held_out += [(sample.id, sample.correct) for sample in fold.samples]
    assert nested.score == pytest.approx(sum(correct for _, correct in held_out) / len(held_out))
    assert sweep.verdict == nested.verdict
    assert sweep.gap_points == pytest.approx(100 * (sweep.best.score - nested.score))
    assert json.loads((out / "nested" / "result.json").read_text())["score"] == nested.score

    fold_file = out / "configs" / sweep.configs[0].name / "folds" / "r0_f0.json"
    written = fold_file.stat().st_mtime_ns
    assert main([*args, "--grid", "max_depth=2,8,16", "--grid", "n_estimators=20"]) == 0  # one value more
    assert fold_file.stat().st_mtime_ns == written  # the runs already there resume, none reruns
    extended = read_sweep(out)
    assert [entry.score for entry in extended.configs[:2]] == [entry.score for entry in sweep.configs]
    assert len(extended.configs) == 3


@pytest.mark.slow
def test_each_configuration_of_a_tiny_llm_sweep_matches_its_standalone_run(tmp_path):
    dataset = "synthetic:shortcut?rows=60"
    shared = [
        "--dataset",
        dataset,
        "--model",
        "tiny",
        "--folds",
        "3",
        "--trainer-option",
        "fold_batching=true",
    ]
    out = tmp_path / "sweep"
    swept = run_cli(
        "sweep", *shared, "--grid", "learning_rate=3e-3,5e-3", "--inner-folds", "2", "--out", str(out)
    )
    assert swept.returncode == 0, swept.stderr
    sweep = read_sweep(out)
    assert [entry.options for entry in sweep.configs] == [
        {"learning_rate": "3e-3"},
        {"learning_rate": "5e-3"},
    ]
    assert sweep.nested is not None and sweep.verdict is not None
    assert sweep.verdict.text in swept.stdout
    for entry in sweep.configs:
        alone = tmp_path / f"alone-{entry.name}"
        single = run_cli(
            "run",
            *shared,
            "--no-zero-shot",
            "--trainer-option",
            f"learning_rate={entry.options['learning_rate']}",
            "--out",
            str(alone),
        )
        assert single.returncode == 0, single.stderr
        run_dir = out / entry.run_dir
        assert predictions(run_dir) == predictions(alone)
        found = agreement(run_dir, alone)
        assert found.holds, found.describe()
        assert json.loads((alone / "result.json").read_text())["score"] == entry.score


GRID_PROBE = """
def test_forest(tst_runner):
    options = {"n_estimators": 5, "min_samples_leaf": 2}
    dataset = "synthetic:control?rows=60"
    run = tst_runner(dataset=dataset, backend="rf", trainer="rf", folds=2, trainer_options=options)
    print("\\nOPTIONS=" + repr(sorted(run.config.trainer_options.items())))
    assert run.result.config["trainer_options"] == run.config.trainer_options
"""


def test_the_plugin_grid_parametrizes_tst_runner_and_its_options_win(pytester):
    pytester.makepyfile(GRID_PROBE)
    result = pytester.runpytest_subprocess(
        *plugin_args(),
        "-s",
        "-v",
        "--tst-report=none",
        "--tst-grid=n_estimators=10,20",
        "--tst-grid=max_depth=2",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*::test_forest?n_estimators=10,max_depth=2? *",
            "*::test_forest?n_estimators=20,max_depth=2? *",
        ]
    )
    options = [line for line in result.outlines if line.startswith("OPTIONS=")]
    assert options == [
        "OPTIONS=[('max_depth', 2), ('min_samples_leaf', 2), ('n_estimators', 10)]",
        "OPTIONS=[('max_depth', 2), ('min_samples_leaf', 2), ('n_estimators', 20)]",
    ]


def test_a_plugin_grid_key_no_engine_has_fails_the_run_naming_it(pytester):
    pytester.makepyfile(GRID_PROBE)
    result = pytester.runpytest_subprocess(
        *plugin_args(), "--tst-report=none", "--tst-grid=learnig_rate=1e-4,3e-4"
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*grid key 'learnig_rate' is neither a trainer nor a predictor option*"])
    malformed = pytester.runpytest(*plugin_args(), "--tst-report=none", "--tst-grid=n_estimators")
    assert malformed.ret == pytest.ExitCode.USAGE_ERROR
    malformed.stderr.fnmatch_lines(["*--tst-grid: --grid expects KEY=V1,V2*"])
