"""The pytest `tst_ray` runtime connects the way the CLI does: a joined cluster gets this tst_bench
shipped and is left running; a private cluster is watched by the reaper, so a pytest killed
outright leaves no Ray process behind."""

import signal

import pytest

from tst_bench.bench.entry_point import plugin_args

from .engines import require_ray
from .ray_support import ClusterProcess, private_ray_tmpdir, wait_until_gone

pytestmark = pytest.mark.slow

SHIPPED = """
import ray
import tst_bench


@ray.remote(num_gpus=1)
def where_tst_bench_is():
    import tst_bench

    return tst_bench.__file__


def test_workers_run_the_shipped_tst_bench(tst_ray):
    here = tst_bench.__file__
    there = ray.get(where_tst_bench_is.remote(), timeout=120)
    assert "runtime_resources" in there and there != here, (here, there)
    assert tst_ray.joined and not tst_ray.started
"""

KILLED = """
import os
import signal
from pathlib import Path

import ray

from tst_bench.cluster import reaper


@ray.remote
class Holder:
    def pid(self):
        return os.getpid()


def reapers_watching(pid):
    needle = f"{reaper.__name__}\\0{pid}\\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_killed_with_ray_running(tst_ray):
    assert len(reapers_watching(os.getpid())) == 1
    assert tst_ray.started
    holder = Holder.remote()
    assert ray.get(holder.pid.remote(), timeout=120) > 0  # a worker is up
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_session_joining_a_cluster_ships_tst_bench_and_leaves_the_cluster_running(pytester, monkeypatch):
    require_ray()
    tmpdir = private_ray_tmpdir()
    cluster = ClusterProcess(tmpdir, nodes=1)
    try:
        monkeypatch.setenv("RAY_TMPDIR", str(tmpdir))
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        pytester.makepyfile(test_shipped=SHIPPED)
        result = pytester.runpytest_subprocess(*plugin_args(), f"--tst-ray-address={cluster.address}")
        result.assert_outcomes(passed=1)
        assert cluster.raylets_alive()
    finally:
        cluster.shutdown()
    assert wait_until_gone(tmpdir, timeout=30) == []


def test_a_session_killed_outright_leaves_no_ray_process(pytester, monkeypatch):
    require_ray()
    tmpdir = private_ray_tmpdir()
    monkeypatch.setenv("RAY_TMPDIR", str(tmpdir))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    pytester.makepyfile(test_killed=KILLED)
    result = pytester.runpytest_subprocess(*plugin_args(), "--tst-gpus=1", timeout=300)
    assert result.ret == -signal.SIGKILL, result.stdout.str()
    assert wait_until_gone(tmpdir, timeout=15) == []
