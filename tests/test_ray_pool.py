"""The data-parallel predictor pool on a local Ray cluster with two logical GPUs (tiny model, hf)."""

import os
import signal
import time

import pytest

from tst_bench.backends import BackendContext, build_predictor
from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset, to_test_instance, to_training_datum
from tst_bench.engine import run_tst
from tst_bench.errors import TsTRuntimeError
from tst_bench.models.resident import ResidentModel
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.predictors.pool import RayPredictorPool
from tst_bench.trainers.peft import PeftTrainer, PeftTrainerConfig

from .ray_support import assert_same_predictions

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def pool(ray_cluster, tiny_source):
    """One object-store pool shared by the tests below (those that break it let it restart)."""
    shared = make_pool(tiny_source)
    yield shared
    shared.close()


@pytest.fixture(scope="module")
def records():
    return load_dataset("synthetic:shortcut?rows=240&seed=5").records


@pytest.fixture(scope="module")
def instances(records):
    return [to_test_instance(r) for r in records[200:]]


def make_pool(tiny_source, workers=2, **options) -> RayPredictorPool:
    config = RunConfig(dataset="unused", backend="ray_hf", workers=workers, predictor_options=options)
    pool = build_predictor(BackendContext(config, tiny_source))
    assert isinstance(pool, RayPredictorPool)
    return pool


def pid_gone(pid, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().split(") ")[1].startswith("Z"):
                    return True
        except OSError:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def reference(tiny_source, instances):
    return HFPredictor(HFPredictorConfig(), ResidentModel(tiny_source)).predict(instances)


def test_pool_predicts_in_input_order_like_one_predictor(pool, instances, reference):
    shuffled = instances[::-1] + instances[:3]  # another order, and repeated ids
    assert_same_predictions(pool.predict(instances), reference)
    by_id = {r.instance_id: r for r in reference}
    assert_same_predictions(pool.predict(shuffled), [by_id[i.instance_id] for i in shuffled])
    assert pool.num_workers == 2
    assert len({w.info.pid for w in pool.workers}) == 2
    assert {tuple(w.info.gpu_ids) for w in pool.workers} == {("0",), ("1",)}
    assert pool.predict([]) == []


@pytest.mark.parametrize("transport", ["files", "object_store_pickle"])
def test_other_transports_give_the_same_predictions(pool, tiny_source, instances, reference, transport):
    pool.reset()  # give its GPUs to this pool
    other = make_pool(tiny_source, transport=transport)
    try:
        assert_same_predictions(other.predict(instances), reference)
        directory = getattr(other._transport, "directory", None)
        if directory is not None:
            assert directory.is_dir() and not list(directory.iterdir())  # exchanged files are removed
    finally:
        other.close()
    assert directory is None or not directory.exists()


def test_adapter_is_loaded_on_every_worker(pool, tiny_source, records, instances, tmp_path):
    resident = ResidentModel(tiny_source)
    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny", num_epochs=2), resident)
    adapter = trainer.train([to_training_datum(r) for r in records[:200]], tmp_path / "adapter", seed=2)
    local = HFPredictor(HFPredictorConfig(), resident)
    base = local.predict(instances)
    local.load_adapter(adapter)
    tuned = local.predict(instances)
    assert [r.option_probs for r in tuned] != [r.option_probs for r in base]

    pool.load_adapter(adapter)
    assert pool.current_adapter == adapter.adapter_path
    assert_same_predictions(pool.predict(instances), tuned)  # both halves went through the adapter
    pool.unload_adapter()
    assert_same_predictions(pool.predict(instances), base)


def test_reset_kills_the_workers_and_the_next_call_starts_new_ones(pool, instances, reference):
    pool.predict(instances[:2])
    pids = [w.info.pid for w in pool.workers]
    pool.reset()
    assert pool.num_workers == 0
    assert all(pid_gone(pid) for pid in pids)
    assert_same_predictions(pool.predict(instances), reference)
    assert not {w.info.pid for w in pool.workers} & set(pids)


def test_release_device_keeps_the_workers_and_their_predictions(pool, instances, reference):
    pool.predict(instances[:2])
    pids = [w.info.pid for w in pool.workers]
    pool.release_device()
    assert [w.info.pid for w in pool.workers] == pids
    assert_same_predictions(pool.predict(instances), reference)


def test_a_failing_worker_is_named(pool, instances, tmp_path):
    not_an_adapter = tmp_path / "empty"
    not_an_adapter.mkdir()
    with pytest.raises(
        TsTRuntimeError, match=r"ray worker 0 \(node \w+ on .*pid \d+ gpu \d\) failed during load"
    ):
        pool.load_adapter(not_an_adapter)
    assert pool.num_workers == 0  # a failure resets the pool; the next call starts afresh
    pool.predict(instances[:4])
    victim = pool.workers[1].info
    os.kill(victim.pid, signal.SIGKILL)
    assert pid_gone(victim.pid)
    with pytest.raises(TsTRuntimeError, match=rf"ray worker 1 .*pid {victim.pid}.* died during predict"):
        pool.predict(instances)


def test_a_pool_that_cannot_be_placed_says_so(pool, tiny_source, instances):
    pool.predict(instances[:2])  # holds both GPUs
    blocked = make_pool(tiny_source, start_timeout_s=3)
    with pytest.raises(
        TsTRuntimeError, match=r"ray worker 0 was not placed within 3s: .* 0 GPU free of .* 2 GPU"
    ):
        blocked.predict(instances)
    blocked.close()


def test_a_tst_run_with_the_ray_hf_backend_matches_the_hf_backend(pool, tmp_path):
    pool.reset()  # give its GPUs to the run's pool
    common = {
        "dataset": "synthetic:shortcut?rows=120&seed=3",
        "folds": 3,
        "trainer_options": {"num_epochs": 2},
    }
    plain = run_tst(RunConfig(**common, out=tmp_path / "hf"), progress=False)
    spread = run_tst(
        RunConfig(**common, out=tmp_path / "ray_hf", backend="ray_hf", workers=2), progress=False
    )
    assert spread.result.backend == "ray_hf"
    assert [s.prediction for s in spread.samples] == [s.prediction for s in plain.samples]
    assert [s.bias_score for s in spread.samples] == pytest.approx(
        [s.bias_score for s in plain.samples], abs=1e-5
    )
    assert spread.result.baselines.zero_shot == plain.result.baselines.zero_shot


def test_ray_vllm_pool_matches_the_in_process_vllm_predictor(pool, instances, vllm_float32):
    from tst_bench.predictors.ray_vllm import RayVLLMPredictor, RayVLLMPredictorConfig

    pool.reset()  # give its GPUs to the vLLM pool
    reference = vllm_float32.predict(instances)
    vllm_pool = RayVLLMPredictor(RayVLLMPredictorConfig(vllm_float32.config, num_workers=2))
    try:
        assert_same_predictions(vllm_pool.predict(instances), reference)
    finally:
        vllm_pool.close()
