"""The pytest plugin's options (command line and ini), parametrization, markers and skip reasons."""

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import tst_bench.datasets  # noqa: F401  (imported before in-process pytester runs, which drop new modules)
from tst_bench.bench.entry_point import ENTRY_POINT, PLUGIN_MODULE, plugin_args

SETTINGS_PROBE = """
import json

def test_settings(tst_settings):
    paths = ("results", "report")
    data = {k: (str(v) if k in paths else v) for k, v in vars(tst_settings).items() if k != "given"}
    print("\\nSETTINGS=" + json.dumps(data, default=list))
"""


def settings_from(result) -> dict:
    import json

    line = next(line for line in result.outlines if line.startswith("SETTINGS="))
    return json.loads(line.removeprefix("SETTINGS="))


def test_defaults_on_a_cpu_machine(pytester):
    pytester.makepyfile(SETTINGS_PROBE)
    result = pytester.runpytest(*plugin_args(), "-s")
    result.assert_outcomes(passed=1)
    settings = settings_from(result)
    assert settings["models"] == ["tiny"]
    assert settings["datasets"] == ["synthetic:shortcut", "synthetic:control"]
    assert settings["backends"] == ["hf"] and settings["trainers"] == ["peft"]
    assert settings["folds"] == 5 and settings["memory_tolerance_mib"] == 256.0
    assert settings["inject_leak"] == 0.0 and settings["results"] == "None"
    assert settings["report"] == str(pytester.path / "reports")


def test_command_line_options(pytester):
    pytester.makepyfile(SETTINGS_PROBE)
    result = pytester.runpytest(
        *plugin_args(),
        "-s",
        "--tst-model=tiny",
        "--tst-model=smollm2-135m",
        "--tst-dataset=synthetic:control,synthetic:numeric",
        "--tst-backend=hf",
        "--tst-trainer=peft",
        "--tst-folds=3",
        "--tst-gpus=2",
        "--tst-workers=4",
        "--tst-memory-tolerance-mib=64.5",
        "--tst-results=out",
        "--tst-report=NONE",
        "--tst-inject-leak=512",
        "--tst-ray-address=127.0.0.1:6379",
    )
    result.assert_outcomes(passed=1)
    settings = settings_from(result)
    assert settings["models"] == ["tiny", "smollm2-135m"]
    assert settings["datasets"] == ["synthetic:control", "synthetic:numeric"]
    assert (settings["folds"], settings["gpus"], settings["workers"]) == (3, 2, 4)
    assert settings["memory_tolerance_mib"] == 64.5 and settings["inject_leak"] == 512.0
    assert settings["results"] == str(pytester.path / "out")
    assert settings["report"] == "None"
    assert settings["ray_address"] == "127.0.0.1:6379"


def test_ini_options_and_command_line_precedence(pytester):
    pytester.makeini(
        """
        [pytest]
        tst_model = tiny smollm2-135m
        tst_dataset = synthetic:numeric
        tst_folds = 4
        tst_memory_tolerance_mib = 100
        tst_results = ini-results
        tst_report = ini-reports
        tst_skip_slow = true
        """
    )
    pytester.makepyfile(SETTINGS_PROBE)
    result = pytester.runpytest(*plugin_args(), "-s", "--tst-folds=2")
    result.assert_outcomes(passed=1)
    settings = settings_from(result)
    assert settings["models"] == ["tiny", "smollm2-135m"]
    assert settings["datasets"] == ["synthetic:numeric"]
    assert settings["folds"] == 2  # the command line wins over the ini file
    assert settings["memory_tolerance_mib"] == 100.0
    assert settings["results"] == str(pytester.path / "ini-results")  # relative to the ini file
    assert settings["report"] == str(pytester.path / "ini-reports")
    assert settings["skip_slow"] is True


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("--tst-folds=1", "--tst-folds must be at least 2, got 1"),
        ("--tst-folds=five", "--tst-folds expects a number, got 'five'"),
        ("--tst-memory-tolerance-mib=-1", "--tst-memory-tolerance-mib must be at least 0"),
        ("--tst-workers=0", "--tst-workers must be at least 1"),
    ],
)
def test_bad_option_values_are_usage_errors(pytester, argument, message):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*plugin_args(), argument)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_unknown_backend_is_refused_at_collection(pytester):
    pytester.makepyfile("def test_run(tst_runner): pass")
    result = pytester.runpytest(*plugin_args(), "--tst-backend=nope", "--tst-trainer=peft")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown backend 'nope'*backends: [[]'hf'*"])


def test_benchmarks_are_parametrized_over_the_option_lists(pytester):
    pytester.makepyfile(
        """
        def test_grid(tst_dataset_spec, tst_model_name, tst_backend_name, tst_trainer_name):
            pass

        def test_dataset_only(tst_dataset):
            assert len(tst_dataset.records) == 50
        """
    )
    result = pytester.runpytest(
        *plugin_args(),
        "-v",
        "--tst-dataset=synthetic:shortcut?rows=50",
        "--tst-dataset=synthetic:control?rows=50",
        "--tst-model=tiny,other",
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "*test_grid?synthetic:shortcut?rows=50-tiny-hf-peft? PASSED*",
            "*test_grid?synthetic:control?rows=50-other-hf-peft? PASSED*",
            "*test_dataset_only?synthetic:control?rows=50? PASSED*",
        ]
    )


def test_a_test_s_own_parametrization_wins(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("tst_model_name", ["pinned"])
        def test_pinned(tst_model_name, tst_dataset_spec):
            assert tst_model_name == "pinned"
        """
    )
    result = pytester.runpytest(*plugin_args(), "--tst-model=a,b")
    result.assert_outcomes(passed=2)  # two datasets by default, one pinned model


def test_header_names_the_session_and_the_missing_nvml(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*plugin_args(), "--tst-inject-leak=128")
    result.stdout.fnmatch_lines(
        [
            "tst-bench: models=tiny datasets=synthetic:shortcut,synthetic:control backends=hf*"
            "INJECTED LEAK 128 MiB/fold*",
            "tst-bench hardware: *",
        ]
    )


def test_gpu_markers_skip_with_the_reason_and_what_enables_them(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu
        def test_one_gpu(): pass

        @pytest.mark.multi_gpu(2)
        def test_two_gpus(): pass

        def test_cpu(): pass
        """
    )
    result = pytester.runpytest(*plugin_args(), "-rs")
    if result.parseoutcomes().get("skipped") != 2:
        pytest.skip("this machine has CUDA GPUs: the CPU skip reasons do not apply")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1] *.py:3: needs a CUDA GPU, found 0; *(run on a GPU runner)",
            "SKIPPED [[]1] *.py:6: needs 2 CUDA GPUs, found 0; *(run on a multi-GPU runner)",
        ]
    )


def test_multi_gpu_without_a_count_is_a_usage_error(pytester):
    pytester.makepyfile("import pytest\n@pytest.mark.multi_gpu\ndef test_x(): pass\n")
    result = pytester.runpytest(*plugin_args())
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*use @pytest.mark.multi_gpu(n) with a GPU count n >= 1*"])


def test_slow_tests_run_unless_skipped_on_request(pytester):
    pytester.makepyfile("import pytest\n@pytest.mark.slow\ndef test_long(): pass\n")
    pytester.runpytest(*plugin_args()).assert_outcomes(passed=1)
    result = pytester.runpytest(*plugin_args(), "--tst-skip-slow", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*slow test skipped by --tst-skip-slow (run without that option to include it)"]
    )


def test_disabling_the_plugin_removes_its_options(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    disabled = "no:" + (ENTRY_POINT if plugin_args()[1] == ENTRY_POINT else PLUGIN_MODULE)
    result = pytester.runpytest("-p", disabled, "--tst-folds=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --tst-folds=3*"])


def test_loading_the_plugin_does_not_import_torch(pytester):
    pytester.makepyfile(
        """
        import sys

        def test_light(tst_settings, tst_gpus, tst_hardware):
            assert "torch" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess(*plugin_args())
    result.assert_outcomes(passed=1)


def test_the_entry_point_is_declared():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"] == {ENTRY_POINT: PLUGIN_MODULE}


def test_importing_the_plugin_module_is_cheap():
    code = (
        "import sys, tst_bench.plugin;"
        " print(sorted(m for m in ('torch', 'transformers', 'ray') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
