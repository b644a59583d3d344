"""The plugin's fixtures inside real pytest sessions (pytester): what they hand out and record."""

import json

import pytest

from tst_bench.bench.entry_point import plugin_args
from tst_bench.hardware import nvml_status

from .engines import require_ray

SMALL = "synthetic:shortcut?rows=60&seed=2"


def test_machine_fixtures(pytester):
    pytester.makepyfile(
        """
        def test_machine(tst_gpus, tst_hardware, tst_memory_monitor):
            assert isinstance(tst_gpus, tuple)
            assert tst_hardware["cpu_count"] >= 1 and "nvml" in tst_hardware and "summary" in tst_hardware
            listed = [gpu["uuid"] for gpu in tst_hardware["gpus"]]
            assert listed[: len(tst_gpus)] == [gpu.uuid for gpu in tst_gpus]
            assert tst_memory_monitor.source == ("nvml" if tst_gpus else "rss")
            assert tst_memory_monitor.before_run[0].used_mib > 0
            if not tst_gpus:
                assert "recording this process's RSS" in tst_memory_monitor.probe.note
        """
    )
    pytester.runpytest_subprocess(*plugin_args()).assert_outcomes(passed=1)


@pytest.fixture
def recorded_session(pytester):
    """One small TsT through `tst_runner` + `benchmark`, with --benchmark-json and --tst-results."""
    pytester.makepyfile(
        test_bench="""
        def test_tst(benchmark, tst_runner):
            outcome = benchmark.pedantic(tst_runner, rounds=1, iterations=1)
            outcome.assert_memory_released()
        """
    )
    result = pytester.runpytest_subprocess(
        *plugin_args(),
        f"--tst-dataset={SMALL}",
        "--tst-folds=2",
        "--tst-results=results",
        "--benchmark-json=bench.json",
    )
    return pytester, result


@pytest.mark.slow
def test_runner_records_into_benchmark_json_results_and_summary(recorded_session):
    pytester, result = recorded_session
    result.assert_outcomes(passed=1)
    (entry,) = json.loads((pytester.path / "bench.json").read_text())["benchmarks"]
    extra = entry["extra_info"]
    tst = extra["tst_result"]
    assert tst["dataset"] == SMALL and tst["model"] == "tiny" and tst["n_folds"] == 2
    assert set(tst["baselines"]) == {"zero_shot", "majority", "chance", "zero_shot_status"}
    assert tst["baselines"]["zero_shot_status"] == "scored"
    for fold in tst["folds"]:
        assert 0.0 <= fold["score"] <= 1.0 and fold["timings"]["train_s"] > 0
        memory = fold["memory"]
        assert memory["source"] == extra["tst_memory"]["source"]
        assert (
            memory["before"][0]["used_mib"] > 0
            and memory["peak"][0]["used_mib"] >= memory["before"][0]["used_mib"]
        )
        assert memory["samples"] >= 2
    assert extra["tst_memory_check"]["ok"] is True and len(extra["tst_memory_check"]["rows"]) == 2
    assert extra["tst_hardware"]["cpu_count"] >= 1
    assert extra["tst_config"]["folds"] == 2 and extra["tst_config"]["inject_leak_mib"] == 0
    assert entry["stats"]["rounds"] == 1
    (record_file,) = (pytester.path / "results").glob("*/run0/tst_record.json")
    record = json.loads(record_file.read_text())
    assert record["nodeid"] == "test_bench.py::test_tst" and record["tst_result"] == tst
    assert (record_file.parent / "result.json").exists() and (record_file.parent / "samples.jsonl").exists()
    report = pytester.path / "reports"
    html = (report / "report.html").read_text()
    assert "test_tst" in html and "<img" in html and (report / "report.md").exists()
    result.stdout.fnmatch_lines(
        [
            "*= tst-bench =*",
            f"report: {report / 'report.html'}, {report / 'report.md'}",
            "test_bench.py::test_tst: synthetic:shortcut?rows=60?seed=2 | tiny | hf/peft:"
            " TsT accuracy * over 2 folds*",
            "memory source: *",
            "*back within 256 MiB of the steady baseline after every fold's clean-up*",
            "| fold | device | baseline | before | peak | after clean-up | after - baseline |*",
            "| r0_f0 | * | yes |",
            "| r0_f1 | * | yes |",
        ]
    )


@pytest.mark.slow
def test_injected_leak_makes_the_memory_check_fail(pytester):
    pytester.makepyfile(
        test_leak="""
        def test_tst(tst_runner):
            tst_runner().assert_memory_released()
        """
    )
    result = pytester.runpytest_subprocess(
        *plugin_args(), f"--tst-dataset={SMALL}", "--tst-folds=2", "--tst-inject-leak=512"
    )
    result.assert_outcomes(failed=1)
    unit = "GPU memory (NVML)" if nvml_status().available else "process RSS (no NVML)"
    result.stdout.fnmatch_lines(
        [
            f"E * {unit} NOT released: after clean-up of fold(s) r0_f1 *(allowed: 256 MiB*",
            "E * | fold | device | baseline | before | peak | after clean-up | after - baseline |*",
            "E * | r0_f0 | * | 1024 | yes |",
            "E * | r0_f1 | * | 256 | NO |",
        ]
    )
    result.stdout.fnmatch_lines(["deliberate leak: 512 MiB kept alive per fold"])


@pytest.mark.slow
def test_shared_predictor_and_trainer(pytester):
    pytester.makepyfile(
        test_pool="""
        import pytest

        from tst_bench.schemas import TestInstance, TrainingDatum

        SEEN = []
        KEPT = []
        QUESTION = TestInstance(
            instance_id="q",
            instruction="Is the cup red?\\nA. yes\\nB. no",
            ground_truth="A",
            choices=["A", "B"],
        )

        def test_first_user(tst_predictor):
            SEEN.append(id(tst_predictor))
            (prediction,) = tst_predictor.predict([QUESTION])
            assert prediction.prediction in ("A", "B")

        def test_trainer_shares_the_model(tst_predictor, tst_trainer, tmp_path):
            SEEN.append(id(tst_predictor))
            base = tst_predictor.predict([QUESTION])[0].option_probs
            data = [TrainingDatum(instruction=QUESTION.instruction, response="A")] * 16
            adapter = tst_trainer.train(data, tmp_path / "adapter", seed=0)
            tst_predictor.load_adapter(adapter)
            tuned = tst_predictor.predict([QUESTION])[0].option_probs
            assert tuned["A"] > base["A"], (base, tuned)

        def test_leaky_user(tst_predictor):
            import torch

            SEEN.append(id(tst_predictor))
            KEPT.append(torch.ones(512 * 2**20, dtype=torch.uint8))

        def test_after_the_leak(tst_predictor):
            KEPT.clear()
            SEEN.append(id(tst_predictor))
            assert len(set(SEEN)) == 1, "the predictor is built once per model"
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args())
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaky_user*",
            "*the shared hf predictor of tiny: * NOT released: after clean-up of test(s) test_leaky_user*",
            "| test | device | baseline | before | peak | after clean-up | after - baseline |*",
            "| test_leaky_user?tiny-hf? | * | NO |",
        ]
    )


def test_rf_in_the_shared_fixtures(pytester):
    """A backend without zero-shot gets no warm-up; an impossible backend/trainer pair is skipped."""
    pytester.makepyfile(
        test_rf="""
        from tst_bench.datasets import load_dataset, to_test_instance, to_training_datum

        def test_rf(tst_trainer, tst_predictor, tmp_path):
            records = load_dataset("synthetic:shortcut?rows=60&seed=2").records
            data = [to_training_datum(record) for record in records[:40]]
            tst_predictor.load_adapter(tst_trainer.train(data, tmp_path / "forest", seed=0))
            predictions = tst_predictor.predict([to_test_instance(record) for record in records[40:]])
            assert len(predictions) == 20 and all(p.option_probs for p in predictions)
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args(), "-rs", "--tst-backend=rf,hf", "--tst-trainer=rf")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * the rf trainer works only with backend(s) rf; this pair cannot run*"]
    )


def test_each_backend_gets_a_trainer_whose_adapters_it_serves(pytester):
    """vLLM cannot serve the tiny model's in-process recipe (modules_to_save): its trainer differs."""
    pytester.makepyfile(
        test_trainers="""
        TRAINERS = {}

        def test_trainer(tst_trainer, tst_backend_name):
            TRAINERS[tst_backend_name] = tst_trainer
            assert (tst_trainer.config.modules_to_save is None) is tst_backend_name.endswith("vllm")

        def test_one_trainer_per_kind_of_adapter():
            assert TRAINERS["hf"] is TRAINERS["ray_hf"]
            assert TRAINERS["vllm"] is TRAINERS["ray_vllm"] is not TRAINERS["hf"]
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args(), "--tst-backend=hf,vllm,ray_hf,ray_vllm")
    result.assert_outcomes(passed=5)


@pytest.mark.slow
def test_ray_runtime_with_logical_gpus(pytester):
    require_ray()
    pytester.makepyfile(
        """
        import ray

        def test_runtime(tst_ray):
            assert tst_ray.started and not tst_ray.joined
            assert tst_ray.gpus == 2 and tst_ray.cpus >= 3

            @ray.remote(num_gpus=1)
            def visible():
                import os
                return os.environ.get("CUDA_VISIBLE_DEVICES")

            assert sorted(ray.get([visible.remote(), visible.remote()], timeout=120)) == ["0", "1"]

        def test_same_runtime(tst_ray):
            assert ray.is_initialized()

        def test_zz_shut_down_at_the_end():
            pass
        """
    )
    pytester.makeconftest(
        """
        import ray

        def pytest_sessionfinish(session):
            print("RAY_AFTER_SESSION", ray.is_initialized())
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args(), "-s", "--tst-gpus=2", "--tst-workers=3")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*RAY_AFTER_SESSION False*"])


SPEEDUP_BENCHMARK = """
import pytest

@pytest.mark.parametrize("speedup", [[1.0, 1.8], [None, 1.0]])
def test_speedup(benchmark, speedup):
    benchmark.extra_info["tst_speedup"] = {
        "unit": "workers", "counts": [1, 2], "seconds": [2.0, 1.1], "speedup": speedup, "hardware": "2 cores",
    }
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)

def test_not_a_tst_benchmark(benchmark):
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
"""


def test_the_session_report_covers_its_tst_benchmarks(pytester):
    pytester.makepyfile(test_speedup=SPEEDUP_BENCHMARK)
    result = pytester.runpytest_subprocess(*plugin_args(), "--tst-report=out/report")
    result.assert_outcomes(passed=3)
    markdown = (pytester.path / "out" / "report" / "report.md").read_text()
    assert "test_speedup[speedup0]" in markdown  # the curve with a 1-worker run
    assert "speedup1" not in markdown and "test_not_a_tst_benchmark" not in markdown
    result.stdout.fnmatch_lines(["report: *out/report/report.html, *out/report/report.md"])


def test_a_report_that_cannot_be_written_fails_the_session(pytester):
    pytester.makepyfile(test_speedup=SPEEDUP_BENCHMARK)
    (pytester.path / "taken").write_text("a file where the report directory should go")
    result = pytester.runpytest_subprocess(*plugin_args(), "--tst-report=taken")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["report not written to *taken: *Error: *"])


def test_no_report_without_tst_benchmarks_or_when_turned_off(pytester):
    pytester.makepyfile(test_speedup=SPEEDUP_BENCHMARK)
    pytester.runpytest_subprocess(*plugin_args(), "--tst-report=none").assert_outcomes(passed=3)
    pytester.makepyfile(test_speedup="def test_plain():\n    pass\n")
    pytester.runpytest_subprocess(*plugin_args()).assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()


def markdown_text(text: str) -> str:
    return text.replace("&", "&amp;")


def first_section(markdown: str) -> str:
    """The report's first `## ` section, heading and text."""
    return markdown.split("\n## ", 2)[1]


@pytest.mark.slow
def test_a_run_without_benchmark_lands_in_the_report(pytester):
    pytester.makepyfile(
        test_mine=f"""
        def test_mine(tst_runner):
            run = tst_runner(dataset="{SMALL}", model="tiny", folds=2)
            assert run.result.n_folds == 2
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args())
    result.assert_outcomes(passed=1)
    report = pytester.path / "reports"
    result.stdout.fnmatch_lines([f"report: {report / 'report.html'}, {report / 'report.md'}"])
    verdict = first_section((report / "report.md").read_text())
    assert verdict.startswith("Your benchmark: non-visual signal per dataset")
    assert f"| {markdown_text(SMALL)} | tiny | hf/peft | accuracy |" in verdict and "test_mine" in verdict


FOREST = ("--tst-backend=rf", "--tst-trainer=rf", "--tst-folds=3")


def test_every_run_of_a_test_is_reported_once_and_measurements_are_not_judged(pytester):
    pytester.makepyfile(
        test_runs=f"""
        def test_two_runs(benchmark, tst_runner):
            benchmark.pedantic(tst_runner, kwargs={{"dataset": "{SMALL}", "seed": 1}}, rounds=1, iterations=1)
            tst_runner(dataset="synthetic:control?rows=60&seed=2")

        def test_memory(tst_runner):
            tst_runner(dataset="synthetic:numeric?rows=60&seed=2", measures="memory")
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args(), *FOREST, "--benchmark-json=bench.json")
    result.assert_outcomes(passed=2)
    markdown = (pytester.path / "reports" / "report.md").read_text()
    runs = markdown.split("\n## Every run", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in runs.splitlines() if line.startswith("| test_")]
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows]
    assert names == ["test_two_runs", "test_two_runs run1", "test_memory"]
    verdict = first_section(markdown)
    assert markdown_text(SMALL) in verdict and markdown_text("synthetic:control?rows=60&seed=2") in verdict
    assert "synthetic:numeric" not in verdict.split("not judged here")[0]
    assert "not judged here, they measure memory or speed: test_memory" in verdict
    (entry,) = json.loads((pytester.path / "bench.json").read_text())["benchmarks"]
    assert entry["extra_info"]["tst_config"]["dataset"] == SMALL  # the run it timed, the first


def test_pytest_fixtures_shows_what_each_fixture_takes_returns_and_records(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess(*plugin_args(), "--fixtures")
    assert result.ret == 0
    text = result.stdout.str()
    undocumented = [line for line in text.splitlines() if line.startswith("tst_") and "no docstring" in line]
    assert not undocumented, undocumented
    joined = " ".join(text.split())
    for shown in (
        'Call it to run one k-fold TsT and record it: `run = tst_runner(dataset="my.jsonl", folds=3)`.',
        "It returns a TsTRun: `run.result` is result.json's TsTResult",
        "Each run lands in the session's report (--tst-report; with or without `benchmark`)",
        "The tst-bench session object",
    ):
        assert shown in joined, shown
