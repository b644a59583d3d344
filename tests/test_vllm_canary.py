"""The sleep canary and the vLLM predictor's hand-off logic around it.

The canary's comparison is tested on its own; the predictor's release / wake-up / rebuild
sequence runs against a stand-in engine (our logic only: the real engines are exercised in
test_vllm_backend.py on CPU and test_vllm_gpu.py on CUDA).
"""

import logging
import math
from types import SimpleNamespace

import pytest

from tst_bench.datasets import load_dataset, to_test_instance
from tst_bench.errors import TsTRuntimeError
from tst_bench.predictors.vllm import VLLMPredictor, VLLMPredictorConfig
from tst_bench.predictors.vllm_canary import CANARY_TOKENS, SleepCanary, default_tolerance, relative_change

from .engines import require_vllm

require_vllm()


def logprob(prompt, token, shift=0.0):
    return -((sum(prompt) % 97) + token) / 10 + shift


class FakeScorer:
    """Log-probabilities as a fixed function of prompt and token, optionally shifted."""

    def __init__(self):
        self.shift = 0.0
        self.calls = []

    def __call__(self, prompts, token_ids):
        self.calls.append(token_ids)
        ids = token_ids or [list(range(3, 3 + CANARY_TOKENS))] * len(prompts)
        return [
            {t: logprob(p, t, self.shift) for t in chosen} for p, chosen in zip(prompts, ids, strict=True)
        ]


def test_the_canary_keeps_the_first_prompts_and_pins_its_tokens():
    canary = SleepCanary(size=2)
    canary.choose([[1, 2], [3], [4]])
    canary.choose([[9, 9]])  # later prompts do not replace the first ones
    assert canary.prompts == [[1, 2], [3]]
    scorer = FakeScorer()
    canary.record(scorer)
    assert scorer.calls == [None, canary.token_ids]  # top tokens first, then exactly those
    assert canary.token_ids == [list(range(3, 3 + CANARY_TOKENS))] * 2
    assert canary.check(scorer, "wake-up") == 0.0


def test_a_moved_log_probability_fails_the_canary_with_prompt_and_difference():
    canary = SleepCanary(size=4, tolerance=0.02)
    canary.choose([[5, 6, 7], [8]])
    scorer = FakeScorer()
    canary.record(scorer)
    scorer.shift = 0.015  # within the tolerance
    assert canary.check(scorer, "wake-up") == pytest.approx(0.015 / 1.1)  # the smallest |log p|: 1.1
    scorer.shift = 0.05
    with pytest.raises(TsTRuntimeError, match=r"wake-up: canary prompt 0 \(token ids \[5, 6, 7\]\)") as error:
        canary.check(scorer, "wake-up")
    assert "difference 0.05," in str(error.value) and "tolerance 0.02" in str(error.value)
    assert "engine_strategy=rebuild" in str(error.value)


def test_the_allowance_grows_with_the_log_probability():
    """bf16 rounding grows with the magnitude: a move of 0.047 at -9.75 (a rebuilt CUDA engine)
    passes; the same move at -1 does not."""
    assert relative_change(-9.75, -9.797) == pytest.approx(0.047 / 9.75)
    assert (
        relative_change(-1.0, -1.047) == pytest.approx(relative_change(-0.5, -0.547)) == pytest.approx(0.047)
    )
    assert relative_change(-9.75, -9.75) == 0.0


@pytest.mark.parametrize("broken", [math.nan, None], ids=["nan", "missing-token"])
def test_a_non_finite_or_missing_log_probability_fails_the_canary(broken):
    canary = SleepCanary(size=1)
    canary.choose([[1]])
    canary.record(FakeScorer())

    def scorer(prompts, token_ids):
        readings = FakeScorer()(prompts, token_ids)
        first = token_ids[0][0]
        if broken is None:
            del readings[0][first]
        else:
            readings[0][first] = broken
        return readings

    with pytest.raises(TsTRuntimeError, match="canary prompt 0"):
        canary.check(scorer, "rebuild")


def test_float32_is_held_to_exact_scores_half_precision_to_a_bf16_rounding_step():
    assert default_tolerance("float32") == 0.0
    assert 0.0 < default_tolerance("bfloat16") == default_tolerance("float16") <= 0.02


# --- the predictor's hand-off around a stand-in engine -------------------------------------------


class FakeLLM:
    """Answers `generate` like vLLM (outputs[0].logprobs[0][token].logprob), nothing else."""

    def __init__(self):
        self.shift = 0.0
        self.resets = 0
        self.llm_engine = SimpleNamespace(add_lora=lambda request: None, remove_lora=lambda lora_id: None)

    def reset_prefix_cache(self):
        self.resets += 1

    def generate(self, prompts, params, lora_request=None, use_tqdm=False):
        params = params if isinstance(params, list) else [params] * len(prompts)
        outputs = []
        for prompt, param in zip(prompts, params, strict=True):
            ids = param.logprob_token_ids or list(range(3, 3 + (param.logprobs or 1)))
            row = {
                t: SimpleNamespace(logprob=logprob(prompt["prompt_token_ids"], t, self.shift)) for t in ids
            }
            outputs.append(SimpleNamespace(outputs=[SimpleNamespace(logprobs=[row], token_ids=[ids[0]])]))
        return outputs


class FakeEngine:
    """VLLMEngine's life cycle (build, sleep, wake, shutdown) without vLLM."""

    def __init__(self, sleep_mode=True):
        self.platform = "cuda"
        self.sleep_mode = sleep_mode
        self.asleep = False
        self.builds = 0
        self._llm = None
        self.process_ids = []

    @property
    def running(self):
        return self._llm is not None

    @property
    def awake(self):
        return self.running and not self.asleep

    def llm(self):
        if self._llm is None:
            self._llm = FakeLLM()
            self.builds += 1
        self.asleep = False
        return self._llm

    def sleep(self):
        self.asleep = True
        return True

    def shutdown(self):
        self._llm = None

    def take_events(self):
        return {"engine_build": 1.0}


@pytest.fixture(scope="module")
def instances():
    return [to_test_instance(r) for r in load_dataset("synthetic:shortcut?rows=12").records]


def fake_predictor(tiny_source, engine, **options):
    predictor = VLLMPredictor(VLLMPredictorConfig(canary_tolerance=0.0, **options), tiny_source)
    predictor._engine = engine
    return predictor


def test_hot_swap_sleeps_for_training_and_checks_the_canary_on_waking(tiny_source, instances):
    engine = FakeEngine()
    predictor = fake_predictor(tiny_source, engine)
    before = predictor.predict(instances)
    assert len(predictor.canary.prompts) == 4  # the first prompts it scored
    predictor.release_device()
    assert engine.asleep and predictor.canary.reference is not None
    assert engine._llm is not None
    assert engine._llm.resets >= 1  # the canary is computed afresh, not from cached prefixes
    after = predictor.predict(instances)
    assert not engine.asleep and predictor.canary.last_difference == 0.0
    assert [r.option_logprobs for r in after] == [r.option_logprobs for r in before]
    events = predictor.take_event_timings()
    assert events["engine_build"] == 1.0 and events["sleep_canary"] > 0
    assert "sleep_canary" not in predictor.take_event_timings()  # taken: counted once


def test_a_wake_up_that_changed_the_engine_stops_the_run(tiny_source, instances):
    engine = FakeEngine()
    predictor = fake_predictor(tiny_source, engine)
    predictor.predict(instances)
    predictor.release_device()
    assert engine._llm is not None  # built by the first prediction
    engine._llm.shift = 0.3  # what garbage weights or a stale adapter would do
    with pytest.raises(TsTRuntimeError, match="sleep canary failed after the vLLM engine's wake-up"):
        predictor.predict(instances)


def test_rebuild_tears_down_for_training_and_checks_the_rebuilt_engine(tiny_source, instances):
    engine = FakeEngine()
    predictor = fake_predictor(tiny_source, engine, engine_strategy="rebuild")
    predictor.predict(instances)
    predictor.release_device()
    assert not engine.running
    predictor.release_device()  # nothing left to release: no error, no second teardown
    predictor.predict(instances)
    assert engine.builds == 2 and predictor.canary.last_difference == 0.0


def test_without_sleep_mode_the_engine_stays_awake_beside_the_trainer(tiny_source, instances, caplog):
    engine = FakeEngine(sleep_mode=False)
    predictor = fake_predictor(tiny_source, engine)
    predictor.predict(instances)
    with caplog.at_level(logging.INFO, logger="tst_bench"):
        predictor.release_device()
    assert engine.awake and predictor.canary.reference is None
    assert "co-located" in caplog.text


def test_no_canary_when_disabled(tiny_source, instances):
    engine = FakeEngine()
    predictor = fake_predictor(tiny_source, engine, canary_prompts=0)
    predictor.predict(instances)
    predictor.release_device()
    assert engine._llm is not None  # built by the first prediction
    engine._llm.shift = 0.3
    predictor.predict(instances)  # unchecked, by request
    assert predictor.canary.prompts == [] and engine.builds == 1
