"""A benchmark designer's own benchmark, the way the README shows it: its module, taken from the
README itself, in an empty folder outside this repository, with the plugin loaded through its
pytest11 entry point (no conftest of ours), on the example dataset with a planted shortcut."""

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tst_bench.bench.entry_point import entry_point_installed

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "my_benchmark"
SECTION = "## Your own benchmark"


def readme_module() -> str:
    """The first Python block of the README's own-benchmark section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"\n{SECTION}", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, f"no ```python block in the README's {SECTION!r} section"
    return found.group(1)


def test_the_readme_module_is_the_example_module():
    assert readme_module() == (EXAMPLE / "test_my_benchmark.py").read_text(encoding="utf-8")


def test_the_example_dataset_is_what_its_generator_writes(tmp_path):
    spec: dict[str, Any] = {"__name__": "make_dataset"}
    exec(compile((EXAMPLE / "make_dataset.py").read_text(), "make_dataset.py", "exec"), spec)
    spec["write"](tmp_path / "rows.jsonl")
    assert (tmp_path / "rows.jsonl").read_bytes() == (EXAMPLE / "my_benchmark.jsonl").read_bytes()


@pytest.mark.slow
def test_the_readme_module_outside_the_repository_reports_its_verdict_first(tmp_path):
    if not entry_point_installed():
        pytest.fail("tst-bench is not installed here: its pytest11 entry point is what this test checks")
    project = tmp_path / "my_benchmark"
    project.mkdir()
    (project / "test_my_benchmark.py").write_text(readme_module(), encoding="utf-8")
    shutil.copy(EXAMPLE / "my_benchmark.jsonl", project)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--tst-backend=rf", "--tst-trainer=rf"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        umask=0o022,
    )
    output = completed.stdout + completed.stderr
    plugins = next(line for line in completed.stdout.splitlines() if line.startswith("plugins:"))
    assert "tst-bench-" in plugins, plugins  # loaded as an installed plugin, not from a conftest
    assert f"rootdir: {project}" in completed.stdout and not list(project.glob("conftest.py"))
    # the planted shortcut is found: the module's gate fails, and says why
    assert completed.returncode == 1, output
    gate = r"AssertionError: TsT 0\.\d\d \[0\.\d\d, 0\.\d\d\] vs \w+ 0\.\d\d: non-visual signal"
    assert re.search(gate, output), output
    report = project / "reports" / "report.md"
    first = report.read_text().split("\n## ", 2)[1]
    assert first.startswith("Your benchmark: non-visual signal per dataset")
    assert f"| {project / 'my_benchmark.jsonl'} | tiny | rf/rf | accuracy |" in first
    assert "non-visual signal, +" in first and "test_questions_do_not_give_answers_away" in first
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (report, report.with_suffix(".html"))}
    assert modes == {"report.md": 0o644, "report.html": 0o644}
