"""Is my benchmark answerable without looking? A blind TsT on its question and option text."""

from pathlib import Path

from tst_bench.verdict import verdict_of

DATASET = Path(__file__).with_name("my_benchmark.jsonl")


def test_questions_do_not_give_answers_away(tst_runner):
    run = tst_runner(dataset=str(DATASET), folds=3)  # a TsTRun, also written to reports/
    found = verdict_of(run.result)  # the TsT score's 95% interval against the majority/chance floor
    # fails when a model trained on the other folds beats guessing on held-out questions
    assert found.signal != "signal", found.text
