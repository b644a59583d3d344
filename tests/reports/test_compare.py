"""`tst-bench compare`: deltas, paired and unpaired score rules in the direction `--fail-on` names
(a rise by default), memory and speedup rules both ways, and exit codes 0 / 1 / 2."""

import json

import pytest

from tst_bench.reports import Thresholds, compare_inputs
from tst_bench.reports.checks import DEFAULT_THRESHOLDS

from ..helpers import run_cli
from .conftest import copy_run, speedup_series, with_flipped_samples, with_measurements

#: the harness's own gate: a drop fails
ON_DROP = Thresholds(fail_on="drop")


def with_score(recorded, target, score):
    """A copy of the run with another score and no per-sample file: compared unpaired."""
    run = copy_run(recorded.run_dir, target, recorded.result.model_copy(update={"score": score}))
    (run / "samples.jsonl").unlink()
    return run


def kinds(comparison):
    return [finding.kind for finding in comparison.regressions]


def test_identical_runs_have_zero_deltas_and_no_regression(recorded):
    comparison = compare_inputs([recorded.run_dir, recorded.benchmark_json])
    assert comparison.regressions == []
    (benchmark,) = comparison.benchmarks
    assert benchmark.names == ["run", "test_tst_shortcut"]
    score = next(row for row in benchmark.rows if row.metric == "score")
    assert score.values == [recorded.result.score, recorded.result.score]


def test_score_drop_beyond_the_ci_is_a_regression_and_within_it_is_not(recorded, tmp_path):
    low = recorded.result.ci95[0]
    within = with_score(recorded, tmp_path / "within", low)
    beyond = with_score(recorded, tmp_path / "beyond", low - 0.01)
    assert compare_inputs([recorded.run_dir, within], ON_DROP).regressions == []
    comparison = compare_inputs([recorded.run_dir, beyond], ON_DROP)
    assert kinds(comparison) == ["score"]
    assert f"below the baseline's 95% CI lower bound {low:.3f}" in comparison.regressions[0].message
    (unpaired,) = [f for f in comparison.findings if f.kind == "unpaired"]
    assert "samples.jsonl is missing" in unpaired.message and comparison.benchmarks[0].paired == [None]
    tolerant = Thresholds(fail_on="drop", score_tolerance=0.02)
    assert compare_inputs([recorded.run_dir, beyond], tolerant).regressions == []
    by_default = compare_inputs([recorded.run_dir, beyond])  # a drop is not what a designer gates on
    assert (
        by_default.regressions == [] and "not checked with --fail-on rise" in by_default.findings[-1].message
    )


def with_ci(recorded, target, half_width):
    """The recorded run (same samples) as if its folds had spread by +-half_width around the score."""
    result = recorded.result
    ci95 = (result.score - half_width, result.score + half_width)
    return copy_run(recorded.run_dir, target, result.model_copy(update={"ci95": ci95}))


def test_paired_runs_flag_a_significant_drop_even_inside_the_baselines_ci(recorded, tmp_path):
    wide = with_ci(recorded, tmp_path / "wide", half_width=0.2)
    six_fewer = with_flipped_samples(recorded, tmp_path / "six", right_to_wrong=6, wrong_to_right=0)
    comparison = compare_inputs([wide, six_fewer], ON_DROP)
    (paired,) = comparison.benchmarks[0].paired
    assert (paired.base_only_right, paired.other_only_right) == (6, 0)
    assert paired.difference == pytest.approx(-6 / recorded.result.n_samples)
    assert paired.mcnemar_p == pytest.approx(2 / 2**6) and paired.ci95[1] < 0
    assert kinds(comparison) == ["score"]
    assert "a significant drop" in comparison.regressions[0].message
    assert "McNemar exact p = 0.0312" in comparison.regressions[0].message
    tolerant = Thresholds(fail_on="drop", score_tolerance=0.06)
    assert compare_inputs([wide, six_fewer], tolerant).regressions == []
    as_result_file = compare_inputs([wide / "result.json", six_fewer / "result.json"], ON_DROP)
    assert as_result_file.benchmarks[0].paired[0] == paired


def test_paired_runs_do_not_flag_a_drop_that_is_not_significant_even_below_the_ci(recorded, tmp_path):
    narrow = with_ci(recorded, tmp_path / "narrow", half_width=0.005)
    mixed = with_flipped_samples(recorded, tmp_path / "mixed", right_to_wrong=3, wrong_to_right=1)
    comparison = compare_inputs([narrow, mixed], Thresholds(fail_on="change"))
    (paired,) = comparison.benchmarks[0].paired
    assert (paired.base_only_right, paired.other_only_right) == (3, 1)
    assert paired.mcnemar_p == pytest.approx(0.625) and paired.ci95[0] < 0 < paired.ci95[1]
    assert comparison.regressions == []
    (note,) = comparison.findings
    assert note.kind == "score" and "not a significant difference" in note.message


def test_runs_over_other_samples_are_compared_unpaired(recorded, tmp_path):
    other = with_flipped_samples(recorded, tmp_path / "other", right_to_wrong=1, wrong_to_right=0)
    lines = (other / "samples.jsonl").read_text().splitlines()
    (other / "samples.jsonl").write_text("\n".join(lines[1:]) + "\n")
    comparison = compare_inputs([recorded.run_dir, other])
    assert comparison.benchmarks[0].paired == [None]
    assert [f.kind for f in comparison.findings] == ["unpaired"]  # within the CI: no regression
    assert (
        "different samples (1 only in the baseline, 0 only in the other run)"
        in comparison.findings[0].message
    )


def test_a_score_rise_beyond_the_ci_fails_by_default_and_not_when_only_drops_are_checked(recorded, tmp_path):
    high = recorded.result.ci95[1]
    within = with_score(recorded, tmp_path / "within", high)
    higher = with_score(recorded, tmp_path / "higher", high + 0.01)
    assert compare_inputs([recorded.run_dir, within]).regressions == []
    comparison = compare_inputs([recorded.run_dir, higher])
    assert kinds(comparison) == ["score"]
    message = comparison.regressions[0].message
    assert f"above the baseline's 95% CI upper bound {high:.3f}" in message
    assert "fails with --fail-on rise: the benchmark got easier without looking" in message
    assert compare_inputs([recorded.run_dir, higher], ON_DROP).regressions == []
    assert kinds(compare_inputs([recorded.run_dir, higher], Thresholds(fail_on="change"))) == ["score"]


def test_memory_not_released_is_a_regression_beyond_the_tolerance(recorded, tmp_path):
    tolerance = DEFAULT_THRESHOLDS.memory_tolerance_mib
    kept = with_measurements(recorded, tmp_path / "kept.json", retained_mib=tolerance + 1)
    released = with_measurements(recorded, tmp_path / "released.json", retained_mib=tolerance)
    assert compare_inputs([recorded.benchmark_json, released]).regressions == []
    comparison = compare_inputs([recorded.benchmark_json, kept])
    assert kinds(comparison) == ["memory"]
    assert "fold r0_f2 on cuda:0 (nvml)" in comparison.regressions[0].message
    looser = Thresholds(memory_tolerance_mib=tolerance + 10)
    assert compare_inputs([recorded.benchmark_json, kept], looser).regressions == []


def test_rss_memory_is_checked_only_on_request(recorded, tmp_path):
    kept = with_measurements(recorded, tmp_path / "rss.json", source="rss", retained_mib=2000)
    assert compare_inputs([recorded.benchmark_json, kept]).regressions == []
    assert kinds(compare_inputs([recorded.benchmark_json, kept], Thresholds(check_rss=True))) == ["memory"]


def test_speedup_drop_beyond_the_threshold_is_a_regression(recorded, tmp_path):
    base = with_measurements(recorded, tmp_path / "base.json", speedup=speedup_series(1.8, 3.2))
    slight = with_measurements(recorded, tmp_path / "slight.json", speedup=speedup_series(1.7, 3.1))
    drop = with_measurements(recorded, tmp_path / "drop.json", speedup=speedup_series(1.5, 3.2))
    assert compare_inputs([base, slight]).regressions == []
    comparison = compare_inputs([base, drop])
    assert kinds(comparison) == ["speedup"]
    assert "speedup at 2 gpus dropped 1.80x -> 1.50x" in comparison.regressions[0].message
    assert compare_inputs([base, drop], Thresholds(speedup_drop=0.2)).regressions == []
    row = next(row for row in comparison.benchmarks[0].rows if row.metric == "speedup @2 gpus")
    assert row.values == [1.8, 1.5]


def test_benchmarks_are_matched_by_name_and_a_missing_one_is_noted(recorded, tmp_path):
    document = json.loads(recorded.benchmark_json.read_text())
    second = json.loads(json.dumps(document["benchmarks"][0]))
    second["name"] = "test_tst_other"
    both = tmp_path / "both.json"
    both.write_text(json.dumps({**document, "benchmarks": [second, document["benchmarks"][0]]}))
    comparison = compare_inputs([both, recorded.benchmark_json])
    assert [b.names for b in comparison.benchmarks] == [
        ["test_tst_other", None],
        ["test_tst_shortcut", "test_tst_shortcut"],
    ]
    assert comparison.regressions == []
    assert [f.kind for f in comparison.findings] == ["missing"]


def test_exit_codes_through_the_cli(recorded, tmp_path):
    same = run_cli("compare", str(recorded.run_dir), str(recorded.run_dir))
    assert same.returncode == 0, same.stderr
    assert "no failed checks" in same.stdout

    dropped = with_score(recorded, tmp_path / "dropped", recorded.result.ci95[0] - 0.05)
    out = tmp_path / "cmp"
    failed = run_cli("compare", str(recorded.run_dir), str(dropped), "--fail-on", "drop", "--out", str(out))
    assert failed.returncode == 1, failed.stderr
    assert "FAILED" in failed.stdout and "1 failed check(s)" in failed.stderr
    written = json.loads((out / "comparison.json").read_text())
    assert [f["kind"] for b in written["benchmarks"] for f in b["findings"]] == ["unpaired", "score"]
    assert written["thresholds"]["fail_on"] == "drop"
    assert "FAILED" in (out / "comparison.md").read_text()

    args = ("compare", str(recorded.run_dir), str(dropped), "--fail-on", "drop", "--score-tolerance", "0.1")
    assert run_cli(*args).returncode == 0
    assert run_cli("compare", str(recorded.run_dir), str(dropped)).returncode == 0  # default: rises fail
    bad = run_cli("compare", str(recorded.run_dir), str(dropped), "--fail-on", "up")
    assert bad.returncode == 2 and "invalid choice: 'up'" in bad.stderr


def test_a_significant_rise_fails_by_default_and_a_drop_with_fail_on_drop(recorded, tmp_path):
    """The gate's direction: the same samples, eight answers more right (or wrong) in the second run."""
    rise = with_flipped_samples(recorded, tmp_path / "rise", right_to_wrong=0, wrong_to_right=8)
    drop = with_flipped_samples(recorded, tmp_path / "drop", right_to_wrong=8, wrong_to_right=0)
    base = str(recorded.run_dir)
    expected = {
        (): {rise: 1, drop: 0},
        ("--fail-on", "rise"): {rise: 1, drop: 0},
        ("--fail-on", "drop"): {rise: 0, drop: 1},
        ("--fail-on", "change"): {rise: 1, drop: 1},
    }
    for options, codes in expected.items():
        for run, code in codes.items():
            completed = run_cli("compare", base, str(run), *options)
            assert completed.returncode == code, (options, run.name, completed.stdout, completed.stderr)
    rose = flat(run_cli("compare", base, str(rise)).stdout)
    assert "a significant rise" in rose and "McNemar exact p = 0.00781" in rose
    assert "fails with --fail-on rise: the benchmark got easier without looking" in rose
    fell = flat(run_cli("compare", base, str(drop), "--fail-on", "drop").stdout)
    assert "a significant drop" in fell and "the harness scores the same benchmark lower" in fell
    assert "not checked with --fail-on rise" in flat(run_cli("compare", base, str(drop)).stdout)


def flat(text: str) -> str:
    """Console output as one line (the console wraps long notes)."""
    return " ".join(text.split())


def test_paired_statistics_and_exit_codes_through_the_cli(recorded, tmp_path):
    significant = with_flipped_samples(recorded, tmp_path / "significant", right_to_wrong=8, wrong_to_right=0)
    failed = run_cli("compare", str(recorded.run_dir), str(significant), "--fail-on", "drop")
    assert failed.returncode == 1, failed.stderr
    assert "McNemar exact p" in failed.stdout and "0.00781" in failed.stdout
    assert "95% paired bootstrap CI" in failed.stdout and "FAILED" in failed.stdout

    mixed = with_flipped_samples(recorded, tmp_path / "mixed", right_to_wrong=3, wrong_to_right=1)
    passed = run_cli("compare", str(recorded.run_dir), str(mixed))
    assert passed.returncode == 0, passed.stderr
    assert "0.625" in passed.stdout and "not a significant difference" in passed.stdout

    (mixed / "samples.jsonl").write_text('{"id": "broken"\n')
    unreadable = run_cli("compare", str(recorded.run_dir), str(mixed))
    assert unreadable.returncode == 2
    assert f"{mixed / 'samples.jsonl'}: line 1" in unreadable.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "absent.json", "absent.json: no such file or directory"),
        (
            lambda tmp: (tmp / "corrupt.json").write_text("{oops") and tmp / "corrupt.json",
            "corrupt.json: not valid JSON",
        ),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "empty: neither a run directory"),
    ],
)
def test_bad_input_exits_2_naming_the_file(recorded, tmp_path, make, message):
    completed = run_cli("compare", str(recorded.run_dir), str(make(tmp_path)))
    assert completed.returncode == 2
    assert message in completed.stderr


def test_one_input_is_not_a_comparison(recorded):
    completed = run_cli("compare", str(recorded.run_dir))
    assert completed.returncode == 2 and "at least two inputs" in completed.stderr
