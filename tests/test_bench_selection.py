"""What `pytest benchmarks` runs by default and what waits for --tst-full (benchmarks/conftest.py)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tst_bench.bench.entry_point import plugin_args

ROOT = Path(__file__).resolve().parent.parent
HEAVY_PROBE = """
import pytest

@pytest.mark.heavy(reason="minutes of training")
def test_long():
    pass

def test_quick():
    pass
"""


def test_heavy_benchmarks_run_only_with_the_full_switch(pytester):
    pytester.makepyfile(HEAVY_PROBE)
    quick = pytester.runpytest(*plugin_args(), "-rs")
    quick.assert_outcomes(passed=1, skipped=1)
    quick.stdout.fnmatch_lines(["*heavy benchmark (minutes of training): runs with --tst-full*"])
    full = pytester.runpytest(*plugin_args(), "--tst-full")
    full.assert_outcomes(passed=2)


@pytest.fixture(scope="module")
def collected_benchmarks() -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return [line for line in completed.stdout.splitlines() if line.startswith("benchmarks/")]


def benchmarks_conftest():
    spec = importlib.util.spec_from_file_location("benchmarks_conftest", ROOT / "benchmarks" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_heavy_entry_names_a_collected_benchmark(collected_benchmarks):
    conftest = benchmarks_conftest()
    ids = {line.split("/", 1)[1] for line in collected_benchmarks}
    names = ids | {test_id.split("[", 1)[0] for test_id in ids}
    assert sorted(set(conftest.HEAVY) - names) == [], "HEAVY lists benchmarks that no longer exist"
    assert sorted(set(conftest.HEAVY_ON_GPU) - ids) == [], "HEAVY_ON_GPU lists cases that no longer exist"
