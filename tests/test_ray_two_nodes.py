"""A two-node Ray cluster on this machine (head + a second raylet, one logical GPU each), joined
as a user would join a real one: folds and inference run on both nodes, and the cluster is left
running by tst-bench (only the test's own helper process shuts it down)."""

import logging

import pytest

from tst_bench.backends import BackendContext, build_predictor
from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset, to_test_instance, to_training_datum
from tst_bench.models.resident import ResidentModel
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.predictors.pool import RayPredictorPool
from tst_bench.trainers.peft import PeftTrainer, PeftTrainerConfig

from .ray_support import (
    ClusterProcess,
    assert_same_predictions,
    assert_same_run,
    fold_workers,
    private_ray_tmpdir,
    run_to_the_end,
    wait_until_gone,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def cluster():
    tmpdir = private_ray_tmpdir()
    two_nodes = ClusterProcess(tmpdir, nodes=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", str(tmpdir))
        patch.delenv("RAY_ADDRESS", raising=False)
        yield two_nodes
    two_nodes.shutdown()
    assert wait_until_gone(tmpdir, timeout=30) == []


def test_folds_run_on_both_nodes(cluster, sequential_run, tmp_path):
    out = tmp_path / "run"
    completed = run_to_the_end(
        out, cluster.tmpdir, "--executor", "ray", "--workers", "2", "--ray-address", cluster.address
    )
    assert completed.returncode == 0, completed.stderr
    assert f"joining the Ray cluster at {cluster.address}" in completed.stderr
    nodes = {name.split("node ")[1][:12] for name in fold_workers(out).values()}
    assert nodes == {node_id[:12] for node_id in cluster.node_ids}
    assert_same_run(out, sequential_run)
    assert cluster.raylets_alive()  # we joined it, so we left it running


def test_pool_ships_the_adapter_to_the_other_node(cluster, tiny_source, tmp_path, caplog):
    records = load_dataset("synthetic:shortcut?rows=240&seed=5").records
    instances = [to_test_instance(r) for r in records[200:]]
    resident = ResidentModel(tiny_source)
    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny", num_epochs=1), resident)
    adapter = trainer.train([to_training_datum(r) for r in records[:200]], tmp_path / "adapter", seed=4)
    local = HFPredictor(HFPredictorConfig(), resident)
    local.load_adapter(adapter)
    expected = local.predict(instances)

    # "auto" finds the cluster through RAY_TMPDIR, as `ray start` clusters are found on a head node
    config = RunConfig(dataset="unused", backend="ray_hf", workers=2, ray_address="auto")
    pool = build_predictor(BackendContext(config, tiny_source))
    assert isinstance(pool, RayPredictorPool)
    try:
        with caplog.at_level(logging.INFO, logger="tst_bench"):
            pool.load_adapter(adapter)
        assert "joining the Ray cluster at auto" in caplog.text
        assert {w.info.node_id if w.info else None for w in pool.workers} == set(cluster.node_ids)
        assert "its files go to ray worker" in caplog.text
        assert_same_predictions(pool.predict(instances), expected)
    finally:
        pool.close()
    assert cluster.raylets_alive()
