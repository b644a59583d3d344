"""The production pair on CPU: real `llamafactory-cli train` per fold, real vLLM engine scoring.

Slow (minutes): every fold starts LlamaFactory (~10-20 s) and, with the rebuild strategy, a vLLM
engine (~15-60 s on 2 cores).
"""

import json
import re

import psutil
import pytest

from tst_bench.datasets import load_dataset, to_test_instance
from tst_bench.evaluator import bias_score
from tst_bench.models.resident import ResidentModel
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig

from .engines import require_llamafactory_cli, require_vllm
from .helpers import run_cli

require_vllm()

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
        worst = max(
            abs(s["bias_score"] - bias_score(records[s["id"]], r))
            for s, r in zip(held_out, reference, strict=True)
        )
        assert worst < 1e-3, f"fold {fold}: vLLM and hf s(x) differ by {worst}"
    hf.unload_adapter()
    zero_shot = [json.loads(line) for line in (out / "zero_shot.jsonl").read_text().splitlines()]
    reference = hf.predict([to_test_instance(records[z["instance_id"]]) for z in zero_shot])
    worst = max(
        abs(z["bias_score"] - bias_score(records[z["instance_id"]], r))
        for z, r in zip(zero_shot, reference, strict=True)
    )
    assert worst < 1e-3
