"""The in-process transformers + peft backend on the tiny model (real training, seconds)."""

import pytest
import torch

from tst_bench.datasets import load_dataset, to_test_instance, to_training_datum
from tst_bench.evaluator import bias_score
from tst_bench.models.resident import ResidentModel
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.trainers.peft import PeftTrainer, PeftTrainerConfig


@pytest.fixture(scope="module")
def shortcut_records():
    return load_dataset("synthetic:shortcut?rows=240&seed=5").records


@pytest.fixture
def pair(tiny_source):
    resident = ResidentModel(tiny_source)
    predictor = HFPredictor(HFPredictorConfig(), resident)
    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny", num_epochs=3), resident)
    return resident, predictor, trainer


def state_of(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed == []


def test_training_and_prediction_leave_the_base_model_untouched(pair, shortcut_records, tmp_path):
    resident, predictor, trainer = pair
    before = state_of(resident.model)
    adapter = trainer.train([to_training_datum(r) for r in shortcut_records[:200]], tmp_path / "a", seed=1)
    assert_same_state(before, state_of(resident.model))
    predictor.load_adapter(adapter)
    predictor.predict([to_test_instance(r) for r in shortcut_records[200:]])
    predictor.unload_adapter()
    assert_same_state(before, state_of(resident.model))
    saved = sorted(p.name for p in adapter.adapter_path.iterdir())
    assert "adapter_model.safetensors" in saved and "adapter_config.json" in saved
    assert not any(name.startswith("checkpoint") for name in saved)
    assert adapter.size_bytes == sum(p.stat().st_size for p in adapter.adapter_path.iterdir())


def test_adapter_changes_predictions_and_training_is_seeded(pair, shortcut_records, tmp_path):
    _, predictor, trainer = pair
    data = [to_training_datum(r) for r in shortcut_records[:200]]
    test = [to_test_instance(r) for r in shortcut_records[200:]]
    base = predictor.predict(test)
    first = trainer.train(data, tmp_path / "a", seed=3)
    second = trainer.train(data, tmp_path / "b", seed=3)
    predictor.load_adapter(first)
    tuned = predictor.predict(test)
    predictor.load_adapter(second)
    again = predictor.predict(test)
    assert [r.option_probs for r in tuned] == [r.option_probs for r in again]
    assert [r.option_probs for r in tuned] != [r.option_probs for r in base]


def test_batched_scoring_equals_one_at_a_time(tiny_source, shortcut_records):
    instances = [to_test_instance(r) for r in shortcut_records[:20]]
    batched = HFPredictor(HFPredictorConfig(batch_size=16), ResidentModel(tiny_source)).predict(instances)
    single = HFPredictor(HFPredictorConfig(batch_size=1), ResidentModel(tiny_source)).predict(instances)
    for left, right in zip(batched, single, strict=True):
        assert left.instance_id == right.instance_id
        assert left.option_probs is not None and right.option_probs is not None
        for letter in "ABCD":
            assert left.option_probs[letter] == pytest.approx(right.option_probs[letter], abs=1e-5)


def test_option_scores_form_the_bias_score(tiny_source, shortcut_records):
    record = shortcut_records[0]
    instance = to_test_instance(record)
    assert instance.ground_truth is None  # the predictor is not handed the answer
    (result,) = HFPredictor(HFPredictorConfig(), ResidentModel(tiny_source)).predict([instance])
    probs, logprobs = result.option_probs, result.option_logprobs
    assert probs is not None and logprobs is not None
    assert sum(probs.values()) == pytest.approx(1.0)
    assert result.prediction == max(probs, key=probs.__getitem__)
    assert result.bias_score is None  # s(x) is the fold contract's
    assert bias_score(record, result) == probs[record.answer]
    assert all(value < 0 for value in logprobs.values())


def test_numeric_answers_are_generated_and_scored(tiny_source, tmp_path):
    records = load_dataset("synthetic:numeric?rows=400&seed=1").records
    resident = ResidentModel(tiny_source)
    predictor = HFPredictor(HFPredictorConfig(max_tokens=4), resident)
    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny"), resident)
    predictor.load_adapter(trainer.train([to_training_datum(r) for r in records[:360]], tmp_path / "n"))
    results = predictor.predict([to_test_instance(r) for r in records[360:]])
    assert all(r.raw_output is not None for r in results)
    parsed = [r for r in results if r.prediction]
    assert len(parsed) >= len(results) // 2  # a trained model answers with numbers
    scores = [bias_score(record, r) for record, r in zip(records[360:], results, strict=True)]
    assert all(0.0 <= value <= 1.0 for value in scores)


def test_reset_releases_the_model_and_reloads_on_use(pair, shortcut_records):
    resident, predictor, _ = pair
    instances = [to_test_instance(r) for r in shortcut_records[:4]]
    first = predictor.predict(instances)
    predictor.reset()
    assert not resident.loaded
    assert [r.option_probs for r in predictor.predict(instances)] == [r.option_probs for r in first]
