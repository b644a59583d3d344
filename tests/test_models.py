import hashlib

import pytest

from tst_bench.errors import InputError
from tst_bench.models import resolve_model
from tst_bench.models.cache import MARKER_FILE
from tst_bench.models.tiny import build_tiny_model
from tst_bench.predictors.prompting import PromptStyle, choice_token_ids, encode_prompt


def digest(directory):
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
        if path.is_file()
    }


def test_tiny_model_builds_identically(tmp_path, tiny_source):
    build_tiny_model(tmp_path)
    assert digest(tmp_path) == digest(tiny_source.path)
    assert (tmp_path / MARKER_FILE).exists()
    assert tiny_source.recipe == "tiny"


def test_tiny_tokenizer_encodes_any_text_and_single_token_letters(tiny_source):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_source.path)
    text = "Ünïcödé ✓ 東京 — ${weird} text\twith tabs"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    assert len(set(choice_token_ids(tokenizer, list("ABCDEFGH")))) == 8
    ids = encode_prompt(tokenizer, "Question?", PromptStyle(), max_length=512)
    assert tokenizer.decode(ids).startswith("Human: Question?")
    assert tokenizer.decode(ids).endswith("Assistant:")


def test_prompts_are_cut_from_the_left(tiny_source):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_source.path)
    ids = encode_prompt(tokenizer, "word " * 500, PromptStyle(), max_length=64)
    assert len(ids) == 64
    assert tokenizer.decode(ids).endswith("Assistant:")


def test_local_directory_and_errors(tmp_path, tiny_source):
    assert resolve_model(str(tiny_source.path)).recipe == "tiny"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"has no config\.json"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="not found"):
        resolve_model(str(tmp_path / "missing"))
    (tmp_path / "file.bin").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        resolve_model(str(tmp_path / "file.bin"))


def test_unreachable_hub_id_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(InputError, match="could not be fetched from the hub"):
        resolve_model("some-org/some-model")
