"""Ray plumbing without a cluster: sizing workers, splitting work, fold groups, options, the reaper."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tst_bench.cluster import reaper as reaper_module
from tst_bench.cluster.actors import split_evenly
from tst_bench.cluster.resources import plan_workers
from tst_bench.config import RunConfig
from tst_bench.engine import check_run
from tst_bench.errors import InputError, TsTRuntimeError
from tst_bench.executors.base import training_passes
from tst_bench.executors.ray import warn_if_packed_workers_batch_folds
from tst_bench.folds import FoldSpec
from tst_bench.predictors.pool import RayPredictorPool, RayPredictorPoolConfig, split_pool_options

from .helpers import run_cli


def test_split_evenly_keeps_order_and_balances():
    items = list(range(11))
    chunks = split_evenly(items, 3)
    assert [len(c) for c in chunks] == [4, 4, 3]
    assert [x for chunk in chunks for x in chunk] == items
    assert split_evenly([1], 3) == [[1], [], []]


def specs(count: int) -> list[FoldSpec]:
    return [FoldSpec(0, fold, count, (), ()) for fold in range(count)]


def test_folds_go_one_per_dispatch_unless_the_trainer_trains_them_together():
    pending = specs(5)
    assert training_passes(pending, 1, parts=2) == [(spec,) for spec in pending]
    together = training_passes(pending, None, parts=2)
    assert [[s.fold for s in group] for group in together] == [[0, 1, 2], [3, 4]]  # one group per worker
    assert [len(group) for group in training_passes(pending[:2], None, parts=4)] == [1, 1]
    assert [len(group) for group in training_passes(pending, 2, parts=2)] == [2, 2, 1]  # capped
    assert training_passes([], None, parts=3) == []


@pytest.mark.parametrize(
    ("gpus_per_worker", "folds_per_pass", "warns"),
    [(0.5, None, True), (0.25, 2, True), (0.5, 1, False), (1.0, None, False), (0.0, None, False)],
)
def test_packed_workers_warn_when_the_trainer_batches_folds(caplog, gpus_per_worker, folds_per_pass, warns):
    warn_if_packed_workers_batch_folds(gpus_per_worker, folds_per_pass)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert bool(warned) is warns
    if warns:
        assert f"{round(1 / gpus_per_worker)} fold workers share each GPU" in warned[0]
        assert "--workers-per-gpu 1" in warned[0] and "162 s" in warned[0]


@pytest.fixture
def cluster_resources(monkeypatch):
    import ray

    def set_resources(**resources):
        monkeypatch.setattr(ray, "cluster_resources", lambda: resources)

    return set_resources


def test_gpu_workers_get_a_share_of_a_gpu(cluster_resources):
    cluster_resources(CPU=16.0, GPU=1.0)
    plan = plan_workers(4, workers_per_gpu=4)
    assert (plan.count, plan.num_gpus, plan.num_cpus, plan.torch_threads) == (4, 0.25, 1.0, 1)
    assert plan.actor_options()["num_gpus"] == 0.25
    assert plan_workers(0, workers_per_gpu=2).count == 2  # 0 fills the cluster


def test_more_workers_than_gpu_slots_is_an_error(cluster_resources):
    cluster_resources(CPU=8.0, GPU=1.0)
    with pytest.raises(
        TsTRuntimeError, match=r"3 workers at 2 per GPU need 2 GPU\(s\); the Ray cluster has 1"
    ):
        plan_workers(3, workers_per_gpu=2)


def test_cpu_workers_split_the_cpus(cluster_resources):
    cluster_resources(CPU=2.0, GPU=2.0)
    plan = plan_workers(2, use_gpus=False)
    assert (plan.num_gpus, plan.num_cpus, plan.torch_threads) == (0.0, 1.0, 1)
    cluster_resources(CPU=2.0)
    assert plan_workers(1).torch_threads == 2  # no GPU in the cluster: CPU workers


def test_executor_options_are_checked_before_anything_is_written(tmp_path):
    base = {"dataset": "synthetic:shortcut?rows=40", "out": tmp_path / "run"}
    bad = [
        ({"executor": "dask"}, "unknown executor 'dask'"),
        ({"executor": "ray", "workers": -1}, "--workers must be 0"),
        ({"executor": "ray", "workers_per_gpu": 0}, "--workers-per-gpu must be at least 1"),
        ({"executor": "ray", "backend": "ray_hf"}, "already spreads inference"),
        ({"executor": "ray", "ray_address": "headnode"}, "expected auto, HOST:PORT or ray://HOST:PORT"),
        (
            {"backend": "ray_hf", "predictor_options": {"transport": "carrier-pigeon"}},
            "transport='carrier-pigeon'.*'files'",
        ),
        (
            {"backend": "ray_hf", "predictor_options": {"batch_sise": 4}},
            r"unknown option\(s\) \['batch_sise'\]",
        ),
    ]
    for overrides, message in bad:
        with pytest.raises(InputError, match=message):
            check_run(RunConfig(**{**base, **overrides}))
    assert not (tmp_path / "run").exists()


def test_an_address_where_no_cluster_listens_fails_fast(tmp_path):
    import socket

    with socket.socket() as probe:  # a free port, closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    completed = run_cli(
        "run", "--dataset", "synthetic:shortcut?rows=40", "--folds", "2", "--out", str(tmp_path / "run"),
        "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in completed.stderr
    assert time.monotonic() - started < 120


def test_ray_settings_do_not_change_the_run_fingerprint():
    plain = RunConfig(dataset="d")
    spread = RunConfig(
        dataset="d", executor="ray", workers=4, workers_per_gpu=2, ray_address="auto", ray_gpus=2
    )
    assert plain.fingerprint("x") == spread.fingerprint("x")


def test_pool_options_split_from_the_backend_options():
    pool, inner = split_pool_options({"num_workers": 2, "transport": "files", "batch_size": 8})
    assert pool == {"num_workers": 2, "transport": "files"}
    assert inner == {"batch_size": 8}
    with pytest.raises(InputError, match="num_workers must be 0"):
        RayPredictorPoolConfig(num_workers=-2)
    with pytest.raises(InputError, match="workers_per_gpu must be at least 1"):
        RayPredictorPoolConfig(workers_per_gpu=0)


def test_ray_vllm_predictor_is_the_pool_over_the_vllm_predictor():
    from tst_bench import RayVLLMPredictor, RayVLLMPredictorConfig, VLLMPredictorConfig
    from tst_bench.predictors.vllm import VLLMPredictor  # the class itself, so the check below narrows

    base = VLLMPredictorConfig(max_tokens=4)
    pool = RayVLLMPredictor(RayVLLMPredictorConfig(base, num_workers=2))
    assert isinstance(pool, RayPredictorPool) and pool.num_workers == 0  # nothing starts before a call
    built = pool.factory()  # what each worker builds (no engine before its first prediction)
    assert isinstance(built, VLLMPredictor) and built.config is base
    assert RayVLLMPredictorConfig().base_config == VLLMPredictorConfig()


# --- the reaper, on real processes ---------------------------------------------------------

FAKE_DRIVER = """
import subprocess, sys, time
session = sys.argv[1]
# a "raylet" of our session with a "worker" child, and an unrelated child that must survive
SLEEP = "import time; time.sleep(300)"
RAYLET = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {SLEEP!r}]); {SLEEP}"
subprocess.Popen([sys.executable, "-c", RAYLET, session])
subprocess.Popen([sys.executable, "-c", SLEEP, "unrelated"])
print("ready", flush=True)
time.sleep(300)
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split(") ")[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def _alive(pid: int) -> bool:
    try:
        return not (Path("/proc") / str(pid) / "stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="the reaper reads /proc (Linux)")
def test_reaper_kills_the_session_of_a_killed_driver_and_nothing_else(tmp_path):
    session = str(tmp_path / "session_x")
    driver = subprocess.Popen([sys.executable, "-c", FAKE_DRIVER, session], stdout=subprocess.PIPE, text=True)
    assert driver.stdout is not None and driver.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    raylet, unrelated = sorted(
        _children(driver.pid), key=lambda pid: session not in Path(f"/proc/{pid}/cmdline").read_text()
    )
    worker = _children(raylet)[0]
    reaper = subprocess.Popen(
        [sys.executable, "-m", reaper_module.__name__, str(driver.pid), session],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        _, stderr = reaper.communicate(timeout=20)
        assert "removed 2 leftover Ray process(es)" in stderr
        deadline = time.monotonic() + 10
        while (_alive(raylet) or _alive(worker)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(raylet) and not _alive(worker)
        assert _alive(unrelated)
    finally:
        for pid in (raylet, worker, unrelated):
            if _alive(pid):
                subprocess.run(["kill", "-9", str(pid)], check=False)
