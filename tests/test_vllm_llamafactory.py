"""The production pair on CPU: real `llamafactory-cli train` per fold, real vLLM engine scoring.

Slow (minutes): every fold starts LlamaFactory (~10-20 s) and, with the rebuild strategy, a vLLM
engine (~15-60 s on 2 cores).
"""

import json
import re

import psutil
import pytest

from tst_bench.backends import build_trainable
from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset, to_test_instance
from tst_bench.evaluator import LLMEvaluator
from tst_bench.folds import make_fold_plan
from tst_bench.models.resident import ResidentModel
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.predictors.trainable import TrainableLLMPredictorConfig

from .engines import require_llamafactory_cli, require_vllm
from .helpers import run_cli

require_vllm()

MB = 2**20
ENGINE_PIDS = re.compile(r"vLLM engine up in .*processes \[([\d, ]+)\]")


def engine_pids(log: str) -> list[int]:
    return [int(pid) for match in ENGINE_PIDS.finditer(log) for pid in match.group(1).split(",")]


def stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(autouse=True)
def llamafactory_cli():
    return require_llamafactory_cli()


@pytest.mark.slow
def test_three_fold_tst_llamafactory_to_vllm(tmp_path, tiny_source):
    """Above majority on every fold; vLLM's s(x) equals hf's for the same adapters."""
    out = tmp_path / "run"
    completed = run_cli(
        "run", "--dataset", "synthetic:shortcut", "--backend", "vllm", "--trainer", "llamafactory",
        "--folds", "3", "--dtype", "float32", "--save-adapters", "--out", str(out), timeout=3600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    pids = engine_pids(completed.stderr)
    assert pids and all(stopped(pid) for pid in pids)  # the engine went down with the run

    result = json.loads((out / "result.json").read_text())
    assert (result["backend"], result["trainer"]) == ("vllm", "llamafactory")
    for fold in result["folds"]:
        assert fold["score"] > fold["majority_score"] + 0.05, fold
        assert fold["adapter_size_bytes"] > 0

    records = {r.id: r for r in load_dataset("synthetic:shortcut").records}
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    hf = HFPredictor(HFPredictorConfig(), ResidentModel(tiny_source, dtype="float32"))
    for fold in range(3):
        held_out = [s for s in samples if s["fold"] == fold]
        hf.load_adapter(out / "adapters" / f"r0_f{fold}")
        reference = hf.predict([to_test_instance(records[s["id"]]) for s in held_out])
        worst = max(abs(s["bias_score"] - r.bias_score) for s, r in zip(held_out, reference))
        assert worst < 1e-3, f"fold {fold}: vLLM and hf s(x) differ by {worst}"
    hf.unload_adapter()
    zero_shot = [json.loads(line) for line in (out / "zero_shot.jsonl").read_text().splitlines()]
    reference = hf.predict([to_test_instance(records[z["instance_id"]]) for z in zero_shot])
    assert max(abs(z["bias_score"] - r.bias_score) for z, r in zip(zero_shot, reference)) < 1e-3


class RssAfterCleanup:
    """Fold observer: RSS of this process, and of it plus the engine processes, after each fold."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.main_mb: list[float] = []
        self.tree_mb: list[float] = []
        self.engine_pids: list[list[int]] = []

    def fold_started(self, spec) -> None:
        pass

    def fold_finished(self, spec):
        me = psutil.Process()
        pids = self.predictor.engine.process_ids
        engine_rss = sum(psutil.Process(pid).memory_info().rss for pid in pids)
        self.main_mb.append(me.memory_info().rss / MB)
        self.tree_mb.append((me.memory_info().rss + engine_rss) / MB)
        self.engine_pids.append(pids)


@pytest.mark.slow
def test_five_folds_rebuild_the_engine_every_fold_without_growing_memory(tmp_path, tiny_source):
    config = RunConfig(
        dataset="synthetic:shortcut?rows=150&seed=6",
        backend="vllm",
        trainer="llamafactory",
        folds=5,
        dtype="float32",
        predictor_options={"engine_strategy": "rebuild"},
        trainer_options={"num_epochs": 1},
    )
    records = load_dataset(config.dataset).records
    trainable = build_trainable(config, tiny_source)
    trainable.config = TrainableLLMPredictorConfig(save_adapters=True)
    observer = RssAfterCleanup(trainable.predictor)
    evaluator = LLMEvaluator(trainable, records, observers=[observer])
    try:
        results = [
            evaluator.evaluate_fold(spec, 0, tmp_path / spec.key)
            for spec in make_fold_plan(records, 5, seed=0)
        ]
    finally:
        evaluator.close()

    engine = trainable.predictor.engine
    assert engine.builds == 5 and not engine.running  # one engine per fold, all in this process
    distinct = {tuple(pids) for pids in observer.engine_pids}
    assert len(distinct) == 5 and all(stopped(pid) for pids in distinct for pid in pids)
    main_growth = max(observer.main_mb) - observer.main_mb[0]
    tree_growth = max(observer.tree_mb) - observer.tree_mb[0]
    assert main_growth <= 100, f"this process grew {main_growth:.0f} MB over 5 folds: {observer.main_mb}"
    assert tree_growth <= 100, f"process tree grew {tree_growth:.0f} MB over 5 folds: {observer.tree_mb}"
    assert all(r.timings.load_s > 1.0 for r in results)  # each fold paid for an engine start
    total = sum(r.adapter_size_bytes for r in results)
    assert total == sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())
    print(
        f"5 adapters: {total} bytes; RSS after clean-up (MB) main {observer.main_mb} tree {observer.tree_mb}"
    )
