"""The registry's names and capabilities, building from them, and the defaults defined once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import tst_bench
from tst_bench.backends import BackendContext, build_trainer, configure, fit_to_backend
from tst_bench.cli import build_parser
from tst_bench.cli.run_options import run_config_from_args
from tst_bench.config import RunConfig
from tst_bench.errors import InputError
from tst_bench.models.options import DTYPES, ModelOptions
from tst_bench.registry import (
    BACKENDS,
    TRAINERS,
    backend_spec,
    check_pairing,
    load_builder,
    pairing_problem,
    trainer_spec,
)
from tst_bench.results import zero_shot_status
from tst_bench.schemas import LLMPredictionResult
from tst_bench.trainers.peft import PeftTrainer


@pytest.mark.parametrize("spec", [*BACKENDS.values(), *TRAINERS.values()], ids=lambda spec: spec.name)
def test_every_registered_builder_resolves(spec):
    assert callable(load_builder(spec))


def test_capabilities_of_the_built_in_entries():
    assert not backend_spec("rf").zero_shot and backend_spec("hf").zero_shot
    assert backend_spec("vllm").vllm_adapters and not backend_spec("hf").vllm_adapters
    assert backend_spec("ray_vllm").vllm_adapters and backend_spec("ray_vllm").pool_of == "vllm"
    assert backend_spec("ray_hf").pool_of == "hf" and not backend_spec("ray_hf").vllm_adapters
    assert trainer_spec("rf").backends == {"rf"} and trainer_spec("peft").backends is None


def test_unknown_names_and_impossible_pairs_say_what_exists():
    with pytest.raises(InputError, match=r"unknown backend 'nope'; choose one of \['hf', 'ray_hf'"):
        backend_spec("nope")
    with pytest.raises(InputError, match=r"unknown trainer 'nope'; choose one of \['llamafactory'"):
        trainer_spec("nope")
    with pytest.raises(
        InputError, match=r"the rf backend works only with trainer\(s\) rf \(got --backend rf"
    ):
        check_pairing("rf", "peft")
    with pytest.raises(InputError, match=r"the rf trainer works only with backend\(s\) rf"):
        check_pairing("hf", "rf")
    check_pairing("rf", "rf")
    check_pairing("vllm", "llamafactory")
    assert pairing_problem("hf", "peft") is None


def test_zero_shot_is_not_applicable_to_a_backend_without_one():
    rf = RunConfig(dataset="d", backend="rf", trainer="rf")
    assert rf.zero_shot  # the default: the backend decides, not the user's flag
    fitted = fit_to_backend(rf)
    assert not fitted.zero_shot
    assert fitted.fingerprint("data") == dataclasses.replace(rf, zero_shot=False).fingerprint("data")
    assert fit_to_backend(RunConfig(dataset="d")).zero_shot
    assert zero_shot_status(fitted, None) == "not applicable"
    assert zero_shot_status(RunConfig(dataset="d", zero_shot=False), None) == "skipped"
    scored = [LLMPredictionResult(instance_id="a", prediction="A")]
    assert zero_shot_status(RunConfig(dataset="d"), scored) == "scored"


def test_an_unknown_trainer_option_is_refused_with_the_known_ones(tiny_source):
    """`extra` used to pass option validation and was then ignored by the peft trainer."""
    config = RunConfig(dataset="d", trainer_options={"extra": {"lora_rank": 4}})
    with pytest.raises(
        InputError, match=r"unknown option\(s\) \['extra'\] for PeftTrainerConfig; known: \[.*'lora_rank'"
    ):
        build_trainer(BackendContext(config, tiny_source))


@pytest.mark.parametrize(("backend", "servable"), [("hf", False), ("vllm", True), ("ray_vllm", True)])
def test_peft_adapters_are_vllm_servable_exactly_when_vllm_serves_them(backend, servable, tiny_source):
    trainer = build_trainer(BackendContext(RunConfig(dataset="d", backend=backend), tiny_source))
    assert isinstance(trainer, PeftTrainer)
    assert (trainer.config.modules_to_save is None) is servable
    assert ("lm_head" in trainer.config.target_modules) is servable


def test_every_model_config_shares_the_model_options_and_their_dtype_check():
    from tst_bench.predictors.hf import HFPredictorConfig
    from tst_bench.predictors.vllm import VLLMPredictorConfig
    from tst_bench.trainers.llamafactory import LlamaFactoryConfig
    from tst_bench.trainers.peft import PeftTrainerConfig

    shared = {field.name for field in dataclasses.fields(ModelOptions)}
    for config_type in (HFPredictorConfig, VLLMPredictorConfig, PeftTrainerConfig, LlamaFactoryConfig):
        assert issubclass(config_type, ModelOptions)
        assert config_type().max_seq_length == ModelOptions.max_seq_length
        assert config_type(dtype="bfloat16").prompt_style == ModelOptions().prompt_style
        with pytest.raises(InputError, match=f"unknown dtype 'float8'; use one of {', '.join(DTYPES)}"):
            config_type(dtype="float8")
    assert {"model_name", "dtype", "device", "trust_remote_code", "max_seq_length"} <= shared
    with pytest.raises(InputError, match="unknown option"):
        configure(HFPredictorConfig, {"system": "x"})


def test_the_cli_defaults_are_run_config_defaults():
    for command in ("run", "prune"):
        args = build_parser().parse_args([command, "--dataset", "d", "--out", "o"])
        parsed = run_config_from_args(args)
        expected = RunConfig(dataset="d", out=Path("o"), zero_shot=command == "run")
        assert parsed == expected, command


def test_the_public_names_import_from_the_package():
    for name in tst_bench.__all__:
        assert getattr(tst_bench, name) is not None, name
