"""A prompt longer than max_seq_length is cut from the left, and a warning names the rows cut."""

import logging

from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.predictors.prompting import prompt_ids
from tst_bench.schemas import TestInstance

OPTIONS = "\nA. red\nB. blue\nAnswer with the option's letter."


def question(instance_id: str, words: int) -> TestInstance:
    text = "What is the colour of the car " + "really " * words + "?" + OPTIONS
    return TestInstance(instance_id=instance_id, instruction=text, choices=["A", "B"])


def test_cut_prompts_are_named_in_a_warning(caplog):
    predictor = HFPredictor(HFPredictorConfig(model_name="tiny", max_seq_length=64))
    instances = [question("long-1", 2000), question("short", 3), question("long-2", 300)]
    with caplog.at_level(logging.WARNING, logger="tst_bench"):
        predictions = predictor.predict(instances)
    assert [p.instance_id for p in predictions] == ["long-1", "short", "long-2"]
    (record,) = [r for r in caplog.records if "were cut from the left" in r.getMessage()]
    message = record.getMessage()
    assert message.startswith("2 of 3 prompts are longer than 63 tokens and were cut from the left")
    style = predictor.config.prompt_style
    long_1, long_2 = (len(prompt_ids(predictor.tokenizer, instances[i].instruction, style)) for i in (0, 2))
    assert f"long-1 ({long_1:,} tokens), long-2 ({long_2:,} tokens);" in message and "short" not in message
