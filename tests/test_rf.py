"""TsT-RF: pickle-free forest files, leakage-free features, and real k-fold runs through the engine."""

import json
import logging
import statistics

import numpy as np
import pytest

from tst_bench.cli import main
from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset, to_test_instance, to_training_datum
from tst_bench.engine import run_tst
from tst_bench.evaluator import bias_score
from tst_bench.rf.backend import RFConfig, RFPredictor, RFTrainer
from tst_bench.rf.features import from_test_instance, from_training_datum
from tst_bench.rf.forest import TreeEnsemble
from tst_bench.schemas import QARecord

from .helpers import write_jsonl


def rf_config(dataset, out, **overrides):
    return RunConfig(
        dataset=dataset, backend="rf", trainer="rf", zero_shot=False, folds=3, seed=0, out=out, **overrides
    )


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_saved_forest_predicts_exactly_like_scikit_learn(kind, tmp_path):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 12))
    if kind == "classifier":
        target = np.where(
            features[:, 0] + features[:, 3] > 0, "yes", np.where(features[:, 1] > 1, "maybe", "no")
        )
        forest = RandomForestClassifier(n_estimators=25, random_state=0).fit(features, target)
    else:
        target = features[:, 0] * 3 + features[:, 5] ** 2
        forest = RandomForestRegressor(n_estimators=25, random_state=0).fit(features, target)
    path = tmp_path / "forest.npz"
    TreeEnsemble.from_sklearn(forest).save(path)
    loaded = TreeEnsemble.load(path)  # allow_pickle=False inside: object arrays would raise
    unseen = rng.normal(size=(200, 12))
    if kind == "classifier":
        np.testing.assert_allclose(loaded.predict_proba(unseen), forest.predict_proba(unseen), atol=1e-12)
        assert list(loaded.predict(unseen)) == list(forest.predict(unseen))
    else:
        np.testing.assert_allclose(loaded.predict(unseen), forest.predict(unseen), rtol=1e-12)


def test_prompts_parse_back_to_question_options_and_format():
    records = [
        QARecord(id="m", question="Which colour?", options=["red", "A blue one"], answer="B", format="mc"),
        QARecord(id="n", question="How many cups?", answer="12", format="num"),
        QARecord(id="o", question="Which room?", answer="kitchen", format="oe"),
    ]
    for record in records:
        parsed = from_training_datum(to_training_datum(record))
        assert (parsed.question, parsed.options, parsed.format, parsed.answer) == (
            record.question,
            record.options,
            record.format,
            record.answer,
        )
        assert from_test_instance(to_test_instance(record)).options == record.options


def test_vocabulary_and_priors_come_from_the_training_rows_only(tmp_path):
    train = [
        QARecord(
            id=f"t{i}", question=f"Is the lamp {i} bright?", options=["yes", "no"], answer="A", format="mc"
        )
        for i in range(6)
    ]
    held_out = QARecord(
        id="h", question="Is the zeppelin bright?", options=["yes", "no"], answer="B", format="mc"
    )
    adapter = RFTrainer(RFConfig(n_estimators=5)).train([to_training_datum(r) for r in train], tmp_path / "a")
    features = json.loads((tmp_path / "a" / "features.json").read_text())
    assert "lamp" in features["question_vocab"]["words"]
    assert "zeppelin" not in features["question_vocab"]["words"]
    assert features["position_prior"] == {"A": 1.0}
    assert not list((tmp_path / "a").glob("*.pkl"))
    predictor = RFPredictor()
    predictor.load_adapter(adapter)
    (result,) = predictor.predict([to_test_instance(held_out)])
    probs = result.option_probs
    assert probs is not None and set(probs) == {"A", "B"}
    assert sum(probs.values()) == pytest.approx(1.0)
    assert bias_score(held_out, result) == pytest.approx(probs["B"])


def test_rf_tst_finds_the_planted_shortcut(tmp_path):
    dataset = "synthetic:shortcut?rows=360&seed=5"
    run = run_tst(rf_config(dataset, tmp_path / "run"), progress=False)
    result = run.result
    assert result.backend == result.trainer == "rf"
    assert result.score > result.baselines.majority + 0.05
    flags = {r.id: r.metadata["shortcut"] for r in load_dataset(dataset).records}
    bias = [(s.id, s.bias_score) for s in run.samples if s.bias_score is not None]
    assert len(bias) == len(run.samples), "every sample has s(x)"
    shortcut = [score for sample_id, score in bias if flags[sample_id]]
    other = [score for sample_id, score in bias if not flags[sample_id]]
    assert statistics.fmean(shortcut) > statistics.fmean(other) + 0.1
    importances = json.loads((tmp_path / "run" / "result.json").read_text())["feature_importances"]
    assert importances and list(importances.values()) == sorted(importances.values(), reverse=True)
    # the question-word/answer-letter lift is what carries the planted scene -> letter shortcut
    assert next(iter(importances)).startswith("word_position_lift")
    fold = json.loads((tmp_path / "run" / "folds" / "r0_f0.json").read_text())
    assert fold["feature_importances"] and fold["adapter_size_bytes"] > 0


def test_rf_on_the_control_set_stays_near_chance(tmp_path):
    run = run_tst(rf_config("synthetic:control?rows=360&seed=5", tmp_path / "run"), progress=False)
    assert run.result.score < 0.36


def test_rf_numeric_and_mixed_datasets(tmp_path):
    numeric = run_tst(rf_config("synthetic:numeric?rows=300&seed=1", tmp_path / "num"), progress=False)
    assert numeric.result.metric == "mra"
    assert numeric.result.score > numeric.result.baselines.chance
    rows = [
        {
            "id": f"m{i}",
            "question": f"Colour of cup {i}?",
            "options": ["red", "blue", "green"],
            "answer": "ABC"[i % 3],
        }
        for i in range(30)
    ] + [
        {"id": f"n{i}", "question": f"How many cups in room {i}?", "answer": str(i % 7 + 1), "format": "num"}
        for i in range(30)
    ]
    mixed = run_tst(
        rf_config(str(write_jsonl(tmp_path / "mixed.jsonl", rows)), tmp_path / "mixed"), progress=False
    )
    assert mixed.result.metric == "mixed" and mixed.result.feature_importances is not None
    assert {name.split("/")[0] for name in mixed.result.feature_importances} == {"mc", "num"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--trainer", "peft"],
            "the rf backend works only with trainer(s) rf (got --backend rf --trainer peft)",
        ),
        (["--trainer", "rf", "--no-zero-shot", "--trainer-option", "trees=5"], "unknown option(s) ['trees']"),
        (["--trainer", "rf", "--no-zero-shot", "--trainer-option", "n_estimators=0"], "n_estimators must be"),
    ],
)
def test_bad_rf_runs_exit_2_and_write_nothing(extra, message, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="tst_bench"):
        code = main(
            ["run", "--dataset", "synthetic:shortcut?rows=30", "--backend", "rf", *extra, "--out", str(out)]
        )
    assert code == 2
    assert message in caplog.text
    assert not out.exists()


def test_rf_runs_without_no_zero_shot_and_says_zero_shot_does_not_apply(tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="tst_bench"):
        rf = ["--backend", "rf", "--trainer", "rf", "--trainer-option", "n_estimators=5"]
        code = main(
            ["run", "--dataset", "synthetic:shortcut?rows=60", *rf, "--folds", "2", "--out", str(out)]
        )
    assert code == 0
    assert "zero-shot does not apply to the rf backend" in caplog.text
    result = json.loads((out / "result.json").read_text())
    assert result["baselines"]["zero_shot"] is None
    assert result["baselines"]["zero_shot_status"] == "not applicable"
    assert not (out / "zero_shot.jsonl").exists()
