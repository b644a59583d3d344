"""The LlamaFactory trainer: YAML and data it writes, and real `llamafactory-cli train` runs.

The real runs use the LlamaFactory venv that `make setup` creates (.venv-llamafactory); each takes
10-30 s, mostly LlamaFactory's start-up.
"""

import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from safetensors import safe_open

from tst_bench.cli import main
from tst_bench.datasets import load_dataset, to_test_instance, to_training_datum
from tst_bench.errors import InputError, TsTRuntimeError
from tst_bench.models.resident import ResidentModel, load_tokenizer
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.predictors.prompting import PromptStyle, encode_prompt, encode_response
from tst_bench.trainers import llamafactory, llamafactory_launch
from tst_bench.trainers.llamafactory import (
    SETTING_KEYS,
    LlamaFactoryConfig,
    LlamaFactoryTrainer,
    build_train_config,
    load_default_settings,
    training_keys,
    write_dataset,
)
from tst_bench.trainers.llamafactory_launch import (
    CLI_ENV,
    PYTHONPATH_ENV,
    resolve_cli,
    resolve_launcher,
)
from tst_bench.trainers.peft import PeftTrainerConfig
from tst_bench.trainers.recipes import LINEAR_MODULES
from tst_bench.trainers.settings import TrainingSettings

from .engines import require_llamafactory_cli
from .helpers import run_cli_in_process


@pytest.fixture(scope="module")
def small_data():
    records = load_dataset("synthetic:shortcut?rows=100&seed=2").records
    return [to_training_datum(r) for r in records], [to_test_instance(r) for r in records[:10]]


def quick_config(**overrides):
    return LlamaFactoryConfig.for_recipe("tiny", **{"num_epochs": 1, "timeout_s": 300, **overrides})


# --- configuration (no subprocess) --------------------------------------------------------------


def test_default_yaml_ships_with_the_package():
    settings = load_default_settings()
    assert settings["stage"] == "sft" and settings["finetuning_type"] == "lora"
    assert settings["save_strategy"] == "no"  # only the final adapter, no checkpoints
    assert settings["report_to"] == "none"


def test_yaml_is_the_default_overridden_by_the_config(tmp_path):
    config = LlamaFactoryConfig.for_recipe("tiny", extra={"logging_steps": 1})
    settings = build_train_config(
        config, tmp_path / "m", tmp_path / "d", tmp_path / "o", seed=7, on_gpu=False
    )
    assert settings["lora_target"] == ",".join([*LINEAR_MODULES, "embed_tokens", "lm_head"])
    assert "additional_target" not in settings  # nothing trained in full: vLLM could not serve it
    assert settings["learning_rate"] == 2e-3 and settings["num_train_epochs"] == 10
    assert settings["template"] == "default"
    assert settings["use_cpu"] is True and settings["bf16"] is False and settings["fp16"] is False
    assert settings["logging_steps"] == 1
    assert settings["seed"] == 7 and settings["output_dir"] == str(tmp_path / "o")
    assert settings["cutoff_len"] == config.max_seq_length


def test_the_yaml_trains_what_the_peft_trainer_would_with_the_same_options(tmp_path):
    """One definition of each setting: the same options give both trainers the same settings,
    and every one of them reaches LlamaFactory's YAML under its own key."""
    options = {"learning_rate": "1e-3", "lora_rank": 4, "lora_dropout": 0.1, "weight_decay": 0.01}
    config = LlamaFactoryConfig.for_recipe("tiny", **options)
    assert config.training == PeftTrainerConfig.for_recipe("tiny", servable=True, **options).training
    settings = build_train_config(config, tmp_path, tmp_path, tmp_path, seed=0, on_gpu=False)
    assert {key: settings[key] for key in SETTING_KEYS.values() if key in settings} == training_keys(
        config.training
    )
    assert (settings["learning_rate"], settings["lora_rank"]) == (1e-3, 4)
    assert (settings["lora_dropout"], settings["weight_decay"]) == (0.1, 0.01)
    assert set(SETTING_KEYS) == {field.name for field in dataclasses.fields(TrainingSettings)} - {"seed"}


def test_pretrained_models_get_the_default_settings_and_their_own_chat_template(tmp_path):
    settings = build_train_config(
        LlamaFactoryConfig.for_recipe("pretrained"), tmp_path, tmp_path, tmp_path, 0, on_gpu=True
    )
    assert settings["lora_target"] == "all" and "template" not in settings
    assert settings["use_cpu"] is False and settings["bf16"] is True
    defaults = TrainingSettings()
    assert settings["per_device_train_batch_size"] == defaults.batch_size
    assert settings["learning_rate"] == defaults.learning_rate


def test_extra_cannot_override_what_tst_bench_owns():
    with pytest.raises(InputError, match="output_dir"):
        LlamaFactoryConfig(extra={"output_dir": "/elsewhere"})


def test_dataset_is_alpaca_jsonl_with_its_dataset_info(tmp_path, small_data):
    data, _ = small_data
    write_dataset(data[:3], tmp_path, system_prompt="Be brief.")
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert rows[0] == {
        "instruction": data[0].instruction,
        "input": "",
        "output": data[0].response,
        "system": "Be brief.",
    }
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info[llamafactory.DATASET_NAME]["formatting"] == "alpaca"
    assert info[llamafactory.DATASET_NAME]["columns"]["system"] == "system"


def test_missing_cli_is_an_input_error_saying_how_to_install(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(CLI_ENV, raising=False)
    monkeypatch.delenv(PYTHONPATH_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(llamafactory_launch, "PROJECT_VENV", ".venv-not-installed")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="make setup") as error:
        resolve_cli()
    assert "pip install llamafactory==" in str(error.value)
    with caplog.at_level(logging.ERROR):
        code = main(
            ["run", "--dataset", "synthetic:shortcut?rows=30", "--trainer", "llamafactory", "--out", "o"]
        )
    assert code == 2
    assert "llamafactory-cli not found" in caplog.text and "make setup" in caplog.text
    assert not (tmp_path / "o").exists()


def test_configured_cli_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv(CLI_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="TST_BENCH_LLAMAFACTORY_CLI"):
        resolve_cli()
    with pytest.raises(InputError, match="cli option"):
        resolve_cli(str(tmp_path))


def fake_target_folder(root: Path) -> Path:
    """A folder shaped like `pip install --target` of LlamaFactory (its CLI module only)."""
    (root / "llamafactory").mkdir(parents=True)
    (root / "llamafactory" / "cli.py").write_text("")
    return root


def test_a_target_folder_runs_llamafactory_with_this_python_and_only_that_folder(tmp_path, monkeypatch):
    folder = fake_target_folder(tmp_path / "lf-site")
    monkeypatch.delenv(CLI_ENV, raising=False)
    monkeypatch.setenv(PYTHONPATH_ENV, str(folder))
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")  # e.g. the staged vLLM packages
    launcher = resolve_launcher()
    assert launcher.command("train", "cfg.yaml") == [
        sys.executable,
        "-m",
        "llamafactory.cli",
        "train",
        "cfg.yaml",
    ]
    assert launcher.python_path == str(folder.resolve())
    trainer = LlamaFactoryTrainer(quick_config())
    assert trainer.launcher == launcher
    env = trainer._environment(tmp_path / "work", "cuda:0")
    assert env["PYTHONPATH"] == str(folder.resolve()) and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert LlamaFactoryTrainer(quick_config(python_path=str(folder))).launcher == launcher


def test_a_target_folder_without_llamafactory_is_an_input_error(tmp_path, monkeypatch):
    monkeypatch.delenv(CLI_ENV, raising=False)
    with pytest.raises(InputError, match="does not exist"):
        resolve_launcher(python_path=str(tmp_path / "absent"))
    with pytest.raises(InputError, match=r"no llamafactory package.*stage_llamafactory\.sh"):
        resolve_launcher(python_path=str(tmp_path))
    monkeypatch.setenv(PYTHONPATH_ENV, str(tmp_path))
    with pytest.raises(InputError, match=re.escape(f"given by the ${PYTHONPATH_ENV}")):
        resolve_launcher()
    with pytest.raises(InputError, match="not both"):
        resolve_launcher(cli="/bin/true", python_path=str(tmp_path))


# --- real llamafactory-cli runs -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cli():
    return require_llamafactory_cli()


@pytest.mark.slow
def test_llamafactory_template_renders_the_prompt_we_score(cli, tiny_source, small_data):
    """LlamaFactory's `default` template, in its own venv and transformers, gives our token ids."""
    data, _ = small_data
    cases = [(d.instruction, d.response, system) for d in data[:5] for system in (None, "Answer fast.")]
    script = textwrap.dedent(
        """
        import json, sys
        from transformers import AutoTokenizer
        from llamafactory.data import get_template_and_fix_tokenizer
        from llamafactory.hparams import DataArguments
        path, cases = sys.argv[1], json.load(sys.stdin)
        tokenizer = AutoTokenizer.from_pretrained(path)
        template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template="default"))
        out = []
        for question, answer, system in cases:
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            out.append(template.encode_oneturn(tokenizer, messages, system))
        print(json.dumps(out))
        """
    )
    completed = subprocess.run(
        [str(cli.parent / "python"), "-c", script, str(tiny_source.path)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    encoded = json.loads(completed.stdout.strip().splitlines()[-1])
    tokenizer = load_tokenizer(tiny_source)
    for (question, answer, system), (prompt_ids, answer_ids) in zip(cases, encoded, strict=True):
        assert prompt_ids == encode_prompt(tokenizer, question, PromptStyle(True, system), 1024)
        ours = encode_response(tokenizer, answer)
        assert answer_ids[: len(ours)] == ours


@pytest.mark.slow
def test_training_publishes_only_the_adapter(cli, tmp_path, tiny_source, small_data):
    data, test = small_data
    output = tmp_path / "adapters" / "fold0"
    adapter = LlamaFactoryTrainer(quick_config(), tiny_source).train(data, output, seed=3)
    assert adapter.adapter_path == output
    assert sorted(p.name for p in output.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert sorted(p.name for p in output.parent.iterdir()) == ["fold0"]  # scratch folder removed
    assert adapter.size_bytes == sum(p.stat().st_size for p in output.iterdir())
    assert adapter.train_seconds is not None and adapter.train_seconds > 0
    assert adapter.training_size == len(data)
    assert adapter.training_config["llamafactory"]["seed"] == 3
    with safe_open(str(output / "adapter_model.safetensors"), framework="pt") as weights:
        names = list(weights.keys())
    assert not [n for n in names if ".base_layer." in n]  # frozen base copies dropped
    assert any("embed_tokens.lora_embedding_A" in n for n in names) and any(
        "lm_head.lora_A" in n for n in names
    )
    predictor = HFPredictor(HFPredictorConfig(), ResidentModel(tiny_source))
    base = predictor.predict(test)
    predictor.load_adapter(adapter)
    tuned = predictor.predict(test)
    assert [r.option_probs for r in tuned] != [r.option_probs for r in base]


@pytest.mark.slow
def test_training_from_a_target_folder_with_this_python(cli, tmp_path, tiny_source, small_data):
    """The GPU machine's layout on CPU: this interpreter (whose own transformers LlamaFactory
    0.9.5 refuses) runs LlamaFactory from a folder of its packages (here the LlamaFactory venv's)."""
    folder = (
        cli.parent.parent
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
    )
    if not (folder / "llamafactory").is_dir():
        pytest.skip(f"the LlamaFactory venv has no site-packages for this Python ({folder})")
    data, _ = small_data
    trainer = LlamaFactoryTrainer(quick_config(python_path=str(folder)), tiny_source)
    adapter = trainer.train(data, tmp_path / "fold0", seed=1)
    assert trainer.launcher.argv[0] == sys.executable
    assert sorted(p.name for p in adapter.adapter_path.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]


@pytest.mark.slow
def test_bad_config_fails_with_the_log_tail_and_records_no_adapter(cli, tmp_path, tiny_source, small_data):
    data, _ = small_data
    output = tmp_path / "adapters" / "fold0"
    trainer = LlamaFactoryTrainer(quick_config(extra={"lora_rnak": 8}), tiny_source)  # misspelt key
    with pytest.raises(TsTRuntimeError, match=r"failed \(exit code [1-9]") as error:
        trainer.train(data, output)
    message = str(error.value)
    assert "last lines:" in message and "Some keys are not used" in message and "lora_rnak" in message
    assert not output.exists()
    assert (tmp_path / "adapters" / ".fold0.llamafactory" / "train.log").exists()  # kept for inspection


@pytest.mark.slow
def test_a_template_that_renders_another_prompt_is_refused(cli, tmp_path, tiny_source, small_data):
    data, _ = small_data
    trainer = LlamaFactoryTrainer(quick_config(template="empty"), tiny_source)
    with pytest.raises(TsTRuntimeError, match="different prompt"):
        trainer.train(data, tmp_path / "fold0")
    assert not (tmp_path / "fold0").exists()


def llamafactory_processes(marker):
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "llamafactory-cli" in cmdline and marker in cmdline:
            found.append(process)
    return found


@pytest.mark.slow
def test_timeout_stops_llamafactory_and_leaves_no_process(cli, tmp_path, tiny_source, small_data):
    data, _ = small_data
    trainer = LlamaFactoryTrainer(quick_config(timeout_s=4), tiny_source)
    with pytest.raises(TsTRuntimeError, match="did not finish within 4s"):
        trainer.train(data, tmp_path / "fold0")
    assert not (tmp_path / "fold0").exists()
    assert llamafactory_processes(str(tmp_path)) == []


def write_failing_cli(path: Path, real_cli: Path, fail_on_call: int) -> Path:
    """The real CLI, but one call is answered by a stand-in that fails as LlamaFactory fails on a
    misspelt key (test_bad_config_fails_with_the_log_tail_and_records_no_adapter sees the real
    one fail), without starting LlamaFactory."""
    path.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""
            import os, sys
            from pathlib import Path
            counter = Path({str(path)!r} + ".calls")
            calls = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(calls))
            if calls == {fail_on_call}:
                sys.exit("ValueError: Some keys are not used: ['lora_rnak']")
            os.execv({str(real_cli)!r}, [{str(real_cli)!r}, *sys.argv[1:]])
            """
        )
    )
    path.chmod(0o755)
    return path


@pytest.mark.slow
def test_failed_training_stops_the_run_and_a_rerun_resumes(cli, tmp_path, monkeypatch, capsys, caplog):
    """(llamafactory -> hf): fold 1's training fails, the fold before it stays, the rerun resumes."""
    out = tmp_path / "run"
    args = ["run", "--dataset", "synthetic:shortcut?rows=90&seed=4", "--folds", "2", "--no-zero-shot"]
    args += ["--trainer", "llamafactory", "--trainer-option", "num_epochs=1", "--out", str(out)]
    monkeypatch.setenv(CLI_ENV, str(write_failing_cli(tmp_path / "cli", cli, fail_on_call=2)))
    failed = run_cli_in_process(capsys, caplog, *args)
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "llamafactory-cli train failed" in failed.stderr and "lora_rnak" in failed.stderr
    assert sorted(p.name for p in (out / "folds").iterdir()) == ["r0_f0.json"]
    assert not (out / "adapters" / "r0_f1").exists()
    resumed = run_cli_in_process(capsys, caplog, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "1 of 2 folds already done" in resumed.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["trainer"] == "llamafactory" and len(result["folds"]) == 2


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_and_stops_llamafactory(cli, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "tst_bench.cli", "run", "--dataset", "synthetic:shortcut?rows=90"]
    command += ["--folds", "3", "--no-zero-shot", "--trainer", "llamafactory", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not llamafactory_processes(str(out)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "LlamaFactory never started"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-3000:]
    assert "rerun the same command to resume" in stderr
    assert llamafactory_processes(str(out)) == []
    assert not list((out / "adapters").glob("r0_f*"))
