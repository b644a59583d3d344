"""The fold contract (evaluator.py): device hand-off, group training, s(x), timings, memory per fold.

Recording predictors and trainers check our own orchestration; the last test runs the contract
with the real tiny model to show a trained-together group scores exactly like folds one by one.
"""

from collections.abc import Sequence
from pathlib import Path

import pytest

from tst_bench.datasets import load_dataset
from tst_bench.evaluator import FoldObserver, FoldObservers, LLMEvaluator, bias_score, hand_device_to_trainer
from tst_bench.executors.base import training_passes
from tst_bench.folds import FoldSpec, make_fold_plan
from tst_bench.memory import MemoryMonitor
from tst_bench.models.resident import ResidentModel
from tst_bench.predictors.base import AdapterRef, LLMPredictorInterface, adapter_path
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.predictors.pool import RayPredictorPool
from tst_bench.predictors.trainable import TrainableLLMPredictor, TrainableLLMPredictorConfig
from tst_bench.predictors.vllm import VLLMPredictor
from tst_bench.rf.backend import RFPredictor, RFTrainer
from tst_bench.schemas import LLMPredictionResult, LoRAAdapterInfo, TestInstance, TrainingDatum
from tst_bench.trainers.base import LLMTrainerInterface, TrainingJob
from tst_bench.trainers.llamafactory import LlamaFactoryTrainer
from tst_bench.trainers.peft import PeftTrainer

from .memory_support import ScriptedProbe

PROBS = {"A": 0.4, "B": 0.3, "C": 0.2, "D": 0.1}


class RecordingPredictor(LLMPredictorInterface):
    """Answers "A" with fixed option probabilities; logs calls; reports engine events."""

    def __init__(self, log: list, owns_device_memory: bool = False, fail_on: str | None = None):
        self.log = log
        self.owns_device_memory = owns_device_memory
        self.fail_on = fail_on
        self.adapter: str | None = None
        self.events: dict[str, float] = {}

    def predict(self, instances: Sequence[TestInstance]) -> list[LLMPredictionResult]:
        assert all(instance.ground_truth is None for instance in instances), "the answer reached a predictor"
        self.log.append(("predict", self.adapter))
        if self.fail_on is not None and self.adapter == self.fail_on:
            raise RuntimeError(f"scoring {self.adapter} failed")
        return [
            LLMPredictionResult(instance_id=i.instance_id, prediction="A", option_probs=PROBS)
            for i in instances
        ]

    def load_adapter(self, adapter: AdapterRef) -> None:
        self.adapter = adapter_path(adapter).name
        self.log.append(("load", self.adapter))
        self.events["engine_wake"] = self.events.get("engine_wake", 0.0) + 0.25

    def unload_adapter(self) -> None:
        self.log.append(("unload", self.adapter))
        self.adapter = None

    def release_device(self) -> None:
        self.log.append(("release", None))
        self.events["engine_sleep"] = 1.5

    def reset(self) -> None:
        self.log.append(("reset", None))

    def take_event_timings(self) -> dict[str, float]:
        events, self.events = self.events, {}
        return events


class RecordingTrainer(LLMTrainerInterface):
    def __init__(self, log: list, needs_exclusive_device: bool = False, trains_folds_together: bool = False):
        self.log = log
        self.needs_exclusive_device = needs_exclusive_device
        self.trains_folds_together = trains_folds_together
        self.passes: list[list[TrainingJob]] = []

    def train(self, training_data: Sequence[TrainingDatum], output_dir: Path, seed=None) -> LoRAAdapterInfo:
        output_dir.mkdir(parents=True)
        (output_dir / "adapter_model.safetensors").write_bytes(b"weights")
        self.log.append(("train", output_dir.name))
        return LoRAAdapterInfo(adapter_path=output_dir, training_size=len(training_data), model_name="fake")

    def train_many(self, jobs: Sequence[TrainingJob]) -> list[LoRAAdapterInfo]:
        self.passes.append(list(jobs))
        return super().train_many(jobs)


class RecordingObserver(FoldObserver):
    def __init__(self, log: list):
        self.log = log

    def fold_started(self, spec) -> None:
        self.log.append(("started", spec.key))

    def fold_finished(self, spec) -> None:
        self.log.append(("finished", spec.key))


@pytest.fixture(scope="module")
def records():
    return load_dataset("synthetic:shortcut?rows=40&seed=2").records


@pytest.fixture(scope="module")
def plan(records):
    return make_fold_plan(records, 4, seed=0)


def evaluator_of(predictor, trainer, records, observers=(), save_adapters=False) -> LLMEvaluator:
    config = TrainableLLMPredictorConfig(save_adapters=save_adapters)
    return LLMEvaluator(TrainableLLMPredictor(predictor, trainer, config), records, 7, observers)


@pytest.mark.parametrize(
    ("owns_device_memory", "needs_exclusive_device", "released"),
    [
        (
            True,
            False,
            True,
        ),  # vLLM engine + in-process peft: the engine must sleep or go (CUDA OOM otherwise)
        (True, True, True),  # vLLM engine + LlamaFactory
        (False, True, True),  # hf on the resident model + LlamaFactory in its own process
        (False, False, False),  # hf + peft share the resident model: nothing to hand over
    ],
)
def test_the_predictor_releases_the_device_whenever_it_holds_memory_the_trainer_cannot_share(
    owns_device_memory, needs_exclusive_device, released, records, plan, tmp_path
):
    log: list = []
    predictor = RecordingPredictor(log, owns_device_memory=owns_device_memory)
    trainer = RecordingTrainer(log, needs_exclusive_device=needs_exclusive_device)
    evaluator_of(predictor, trainer, records).evaluate_fold(plan[0], tmp_path / "r0_f0")
    expected = [("unload", None), ("release", None)] if released else [("unload", None)]
    assert log[: log.index(("train", "r0_f0"))] == expected


def test_engines_declare_whether_they_hold_device_memory_of_their_own():
    assert VLLMPredictor.owns_device_memory and RayPredictorPool.owns_device_memory
    assert not HFPredictor.owns_device_memory and not RFPredictor.owns_device_memory
    assert not PeftTrainer.needs_exclusive_device and LlamaFactoryTrainer.needs_exclusive_device
    assert not RFTrainer.needs_exclusive_device
    assert not LLMTrainerInterface.trains_folds_together


def test_hand_off_drops_the_adapter_first():
    log: list = []
    predictor = RecordingPredictor(log, owns_device_memory=True)
    predictor.adapter = "r0_f3"
    hand_device_to_trainer(predictor, RecordingTrainer(log))
    assert log == [("unload", "r0_f3"), ("release", None)]


def test_the_contract_computes_s_x_from_the_option_probabilities(records, plan, tmp_path):
    log: list = []
    evaluator = evaluator_of(RecordingPredictor(log), RecordingTrainer(log), records)
    result = evaluator.evaluate_fold(plan[0], tmp_path / "r0_f0")
    by_id = {record.id: record for record in records}
    assert [s.bias_score for s in result.samples] == [PROBS[by_id[s.id].answer] for s in result.samples]
    assert [s.correct for s in result.samples] == [by_id[s.id].answer == "A" for s in result.samples]
    zero_shot = evaluator.zero_shot().predictions
    assert [p.bias_score for p in zero_shot] == [PROBS[r.answer] for r in records]


def test_numbers_and_open_answers_score_their_own_answer():
    (number,) = load_dataset("synthetic:numeric?rows=1&seed=0").records
    value = float(number.answer)
    prediction = LLMPredictionResult(instance_id=number.id, prediction=f"{value * 1.1:g}")
    assert 0.0 < bias_score(number, prediction) < 1.0
    exact = LLMPredictionResult(instance_id=number.id, prediction=number.answer)
    assert bias_score(number, exact) == 1.0


def test_a_group_trains_in_one_pass_then_scores_and_hands_on_each_fold(records, plan, tmp_path):
    log: list = []
    predictor = RecordingPredictor(log, owns_device_memory=True)
    trainer = RecordingTrainer(log, trains_folds_together=True)
    evaluator = evaluator_of(predictor, trainer, records, observers=[RecordingObserver(log)])
    group = plan[:3]
    delivered = []

    def on_result(result):
        log.append(("result", f"r0_f{result.fold}"))
        delivered.append(result)

    evaluator.evaluate_group(group, lambda spec: tmp_path / spec.key, on_result)
    (jobs,) = trainer.passes
    assert [job.output_dir.name for job in jobs] == ["r0_f0", "r0_f1", "r0_f2"]
    assert [job.seed for job in jobs] == [spec.seed(7) for spec in group]
    assert [len(job.training_data) for job in jobs] == [len(spec.train_ids) for spec in group]
    keys = ["r0_f0", "r0_f1", "r0_f2"]
    expected = [("started", key) for key in keys] + [("unload", None), ("release", None)]
    expected += [("train", key) for key in keys]
    for key in keys:  # each fold is cleaned up, observed and handed on before the next one loads
        expected += [("load", key), ("predict", key), ("unload", key), ("finished", key), ("result", key)]
    assert log == expected
    timings = [result.timings for result in delivered]
    assert [t.trained_together for t in timings] == [3, 3, 3]
    assert len({t.train_s for t in timings}) == 1  # the pass's time, split evenly
    assert all(t.events == {"engine_sleep": 0.5, "engine_wake": 0.25} for t in timings)
    assert all(t.total_s >= t.train_s + t.load_s + t.score_s for t in timings)
    assert not any((tmp_path / key).exists() for key in keys)  # adapters not kept


def test_a_fold_failing_in_a_group_closes_the_rest_and_removes_their_adapters(records, plan, tmp_path):
    log: list = []
    predictor = RecordingPredictor(log, fail_on="r0_f1")
    trainer = RecordingTrainer(log, trains_folds_together=True)
    evaluator = evaluator_of(predictor, trainer, records, observers=[RecordingObserver(log)])
    delivered = []
    with pytest.raises(RuntimeError, match="scoring r0_f1 failed"):
        evaluator.evaluate_group(plan[:3], lambda spec: tmp_path / spec.key, delivered.append)
    assert [result.fold for result in delivered] == [0]
    assert [entry for entry in log if entry[0] == "finished"] == [
        ("finished", "r0_f0"),
        ("finished", "r0_f1"),
        ("finished", "r0_f2"),
    ]
    assert predictor.adapter is None
    assert not any((tmp_path / spec.key).exists() for spec in plan[:3])


def test_kept_adapters_stay_on_disk(records, plan, tmp_path):
    log: list = []
    evaluator = evaluator_of(RecordingPredictor(log), RecordingTrainer(log), records, save_adapters=True)
    evaluator.evaluate_fold(plan[0], tmp_path / "r0_f0")
    assert (tmp_path / "r0_f0" / "adapter_model.safetensors").exists()


def test_passes_hold_one_fold_unless_the_trainer_trains_folds_together(plan):
    assert training_passes(plan, folds_per_pass=1) == [(spec,) for spec in plan]
    assert training_passes(plan, folds_per_pass=None) == [tuple(plan)]
    five = [FoldSpec(0, fold, 5, (), ()) for fold in range(5)]
    assert [[s.fold for s in p] for p in training_passes(five, folds_per_pass=2)] == [[0, 1], [2, 3], [4]]
    assert [len(p) for p in training_passes(five[:4], folds_per_pass=3)] == [2, 2]  # balanced
    assert training_passes([], folds_per_pass=None) == []


def test_memory_joins_each_overlapping_fold_s_result_under_its_own_key(records, plan, tmp_path):
    """What the Ray driver does: folds started and finished out of order, one attach step."""
    log: list = []
    evaluator = evaluator_of(RecordingPredictor(log), RecordingTrainer(log), records)
    results = {spec.key: evaluator.evaluate_fold(spec, tmp_path / spec.key) for spec in plan[:2]}
    probe = ScriptedProbe()
    with MemoryMonitor(probe, interval_s=3600) as monitor:
        observers = FoldObservers([monitor])
        probe.level = 100
        observers.started(plan[:1])
        probe.level = 200
        observers.started(plan[1:2])
        probe.level = 300
        first = observers.finished(plan[0], results["r0_f0"])
        probe.level = 250
        second = observers.finished(plan[1], results["r0_f1"])
    memories = [r.memory for r in (first, second) if r.memory is not None]
    assert len(memories) == 2
    assert [m.before[0].used_mib for m in memories] == [100, 200]
    assert [m.after_cleanup[0].used_mib for m in memories] == [300, 250]
    assert first.samples == results["r0_f0"].samples and results["r0_f0"].memory is None


@pytest.mark.slow  # four real trainings
def test_a_group_trained_together_scores_like_folds_one_by_one(tiny_source, records, plan, tmp_path):
    """The real tiny model through the group path (both folds in one pass) and one fold at a time:
    the same samples, s(x) equal up to float summation order."""
    from tst_bench.trainers.peft import PeftTrainerConfig

    def evaluator(together: bool) -> LLMEvaluator:
        resident = ResidentModel(tiny_source)
        config = PeftTrainerConfig.for_recipe("tiny", num_epochs=1, fold_batching=together)
        trainer = PeftTrainer(config, resident)
        assert trainer.trains_folds_together is together
        return LLMEvaluator(
            TrainableLLMPredictor(HFPredictor(HFPredictorConfig(), resident), trainer), records, 3
        )

    one_by_one = [evaluator(False).evaluate_fold(spec, tmp_path / "single" / spec.key) for spec in plan[:2]]
    grouped: list = []
    evaluator(True).evaluate_group(plan[:2], lambda spec: tmp_path / "group" / spec.key, grouped.append)
    for got, expected in zip(grouped, one_by_one, strict=True):
        assert [(s.id, s.fold, s.target) for s in got.samples] == [
            (s.id, s.fold, s.target) for s in expected.samples
        ]
        for left, right in zip(got.samples, expected.samples, strict=True):
            assert left.bias_score == pytest.approx(right.bias_score, abs=1e-4), left.id
            assert right.option_probs is not None, left.id
            ranked = sorted(right.option_probs.values(), reverse=True)
            if ranked[0] - ranked[1] > 1e-3:  # a near-tie may break either way
                assert left.prediction == right.prediction, left.id
    assert [r.timings.trained_together for r in grouped] == [2, 2]
