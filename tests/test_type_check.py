"""`make lint` type-checks code that only a GPU runs: a call to a method a class does not have fails.

The check plants such a call (the `PeakSampler.start` a rename once left in a GPU-only benchmark,
unseen until a GPU ran it) in a copy of the tree and runs pyright on it with this project's settings.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .engines import REQUIRED

ROOT = Path(__file__).resolve().parents[1]
PYRIGHT = Path(sys.executable).with_name("pyright")
GPU_ONLY = Path("benchmarks") / "test_ray_gpu.py"
MISSING_METHOD = 'Cannot access attribute "start" for class "PeakSampler"'


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    if not PYRIGHT.exists():
        if REQUIRED:
            raise FileNotFoundError(f"{PYRIGHT}: `make setup` installs pyright (the [dev] extra)")
        pytest.skip("pyright is not installed; the [dev] extra (`make setup`) installs it")
    copy = tmp_path_factory.mktemp("tree")
    for part in ("tst_bench", "benchmarks", "tests"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def pyright(tree: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PYRIGHT), "--pythonpath", sys.executable, str(path)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_missing_method_in_a_gpu_only_benchmark_fails_the_type_check(tree_copy):
    target = tree_copy / GPU_ONLY
    original = target.read_text()
    assert pyright(tree_copy, GPU_ONLY).returncode == 0
    planted = original.replace("sampler.open(", "sampler.start(", 1)
    assert planted != original, f"{GPU_ONLY} no longer opens a PeakSampler window: plant elsewhere"
    target.write_text(planted)
    try:
        checked = pyright(tree_copy, GPU_ONLY)
    finally:
        target.write_text(original)
    assert checked.returncode == 1, checked.stdout[-2000:]
    assert MISSING_METHOD in checked.stdout
