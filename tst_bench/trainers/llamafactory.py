"""LoRA training with LlamaFactory's CLI, in its own process (and usually its own venv).

LlamaFactory pins an older transformers than vLLM, so it lives in a separate environment (its own
venv, or a folder only its process sees: llamafactory_launch.py) and is driven as
`llamafactory-cli train cfg.yaml`: training data as alpaca JSONL plus `dataset_info.json`, the
YAML made of the package's default_lora.yaml (LlamaFactory's own keys) and the training settings
(trainers/settings.py) written as LlamaFactory keys (`training_keys`). Each call works in a
scratch folder beside the adapter folder (data, YAML, log, HF_HOME), publishes only the final
adapter, and removes the scratch folder on success; on failure the folder stays for inspection
and the error carries the tail of the log.

The prompt LlamaFactory trains on must be the one the predictors score, token for token; the
trainer compares the first training example LlamaFactory logs with `encode_prompt`'s output and
refuses the adapter when they differ (a template that does not match the model's chat template).
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError, TsTRuntimeError
from ..jsonl import atomic_write
from ..models import ModelSource, Recipe, resolve_model
from ..models.adapters import adapter_size_bytes, drop_base_layer_weights
from ..models.resident import load_tokenizer, pick_device
from ..predictors.prompting import encode_prompt
from ..schemas import LoRAAdapterInfo, TrainingDatum
from .base import LLMTrainerInterface
from .cli_process import ProcessTimeout, run_logged, tail
from .llamafactory_launch import LaunchCommand, resolve_launcher
from .recipes import recipe_settings
from .settings import ALL_LINEAR, LoRATrainerConfig, TrainingSettings

logger = logging.getLogger(__name__)

DATASET_NAME = "tst_train"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
#: YAML keys tst-bench sets itself; `extra` may not override them.
OWNED_KEYS = frozenset(
    {
        "model_name_or_path",
        "dataset",
        "dataset_dir",
        "output_dir",
        "seed",
        "stage",
        "do_train",
        "finetuning_type",
        "save_strategy",
        "overwrite_output_dir",
    }
)
#: TrainingSettings field -> the LlamaFactory YAML key it is written as (the seed is each fold's own).
SETTING_KEYS = {
    "lora_rank": "lora_rank",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "target_modules": "lora_target",
    "modules_to_save": "additional_target",
    "learning_rate": "learning_rate",
    "num_epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "warmup_ratio": "warmup_ratio",
    "max_grad_norm": "max_grad_norm",
    "weight_decay": "weight_decay",
}
_PROGRESS = re.compile(r"^\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)\s*\[")
_LOSS = re.compile(r"'loss': '?([-+0-9.eE]+)'?")
_FIRST_EXAMPLE = re.compile(r"^input_ids:\s*\n\[([0-9,\s]*)\]", re.MULTILINE)


@dataclass(frozen=True)
class LlamaFactoryConfig(LoRATrainerConfig):
    """The model, the training settings (trainers/settings.py, written as LlamaFactory YAML keys)
    and how LlamaFactory is run."""

    #: The llamafactory-cli executable; else $TST_BENCH_LLAMAFACTORY_CLI, PATH, .venv-llamafactory.
    cli: str | None = None
    #: A folder LlamaFactory and its pins were `pip install --target`-ed into (else
    #: $TST_BENCH_LLAMAFACTORY_PYTHONPATH): run with this Python and only that folder on PYTHONPATH.
    python_path: str | None = None
    #: LlamaFactory template; None lets LlamaFactory read the tokenizer's chat template.
    template: str | None = None
    #: None keeps default_lora.yaml's value.
    gradient_accumulation_steps: int | None = None
    #: CUDA_VISIBLE_DEVICES for the training process (else taken from `device` = "cuda:N").
    gpu_ids: str | None = None
    #: OMP/MKL threads of the training process; None keeps the environment's.
    cpu_threads: int | None = None
    timeout_s: float | None = 4 * 3600.0
    #: Compare LlamaFactory's first tokenised example with tst-bench's prompt (see module doc).
    check_prompt: bool = True
    #: Further LlamaFactory YAML keys, applied last.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        owned = sorted(OWNED_KEYS & set(self.extra))
        if owned:
            raise InputError(f"llamafactory extra keys {owned} are set by tst-bench and cannot be overridden")

    @classmethod
    def for_recipe(cls, recipe: Recipe, **overrides) -> LlamaFactoryConfig:
        """The recipe's settings vLLM can serve (trainers/recipes.py); the tiny model also gets one
        thread: it gains nothing from more, and spinning OpenMP threads on shared cores cost 10x."""
        tiny = {"template": "default", "cpu_threads": 1} if recipe == "tiny" else {}
        return cls(**{**recipe_settings(recipe, servable=True).options(), **tiny, **overrides})


class LlamaFactoryTrainer(LLMTrainerInterface):
    """`llamafactory-cli train` per fold; needs the device to itself while it runs."""

    needs_exclusive_device = True

    def __init__(self, config: LlamaFactoryConfig, source: ModelSource | None = None):
        self.config = config
        self._source = source
        # a path lookup only: a missing LlamaFactory fails before the run
        self.launcher: LaunchCommand = resolve_launcher(config.cli, config.python_path)

    @property
    def source(self) -> ModelSource:
        if self._source is None:
            self._source = resolve_model(self.config.model_name)
        return self._source

    def train(
        self, training_data: Sequence[TrainingDatum], output_dir: Path, seed: int | None = None
    ) -> LoRAAdapterInfo:
        if not training_data:
            raise InputError("no training data for LlamaFactory")
        seed = self.config.seed if seed is None else seed
        output_dir = Path(output_dir)
        work = output_dir.parent / f".{output_dir.name}.llamafactory"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        device = pick_device(self.config.device)
        settings = build_train_config(
            self.config, self.source.path, work / "data", work / "out", seed, device.startswith("cuda")
        )
        write_dataset(training_data, work / "data", self.config.system_prompt)
        config_path = work / "train.yaml"
        config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        log_path = work / "train.log"
        logger.info("LlamaFactory: training on %d examples (log: %s)", len(training_data), log_path)
        started = time.perf_counter()
        self._run(config_path, log_path, work, device)
        seconds = time.perf_counter() - started
        if self.config.check_prompt:
            self._check_prompt(training_data[0], log_path, settings)
        results = _read_json(work / "out" / "all_results.json")
        publish_adapter(work / "out", output_dir, log_path)
        shutil.rmtree(work, ignore_errors=True)
        logger.info("LlamaFactory: adapter in %s after %.1fs", output_dir, seconds)
        return LoRAAdapterInfo(
            adapter_path=output_dir,
            training_size=len(training_data),
            model_name=self.source.spec,
            training_config={
                "llamafactory": settings,
                "seed": seed,
                "final_loss": results.get("train_loss"),
                "llamafactory_train_runtime_s": results.get("train_runtime"),
            },
            size_bytes=adapter_size_bytes(output_dir),
            train_seconds=seconds,
        )

    def _run(self, config_path: Path, log_path: Path, work: Path, device: str) -> None:
        progress = _ProgressLog()
        try:
            returncode = run_logged(
                self.launcher.command("train", str(config_path)),
                log_path,
                env=self._environment(work, device),
                cwd=work,
                timeout_s=self.config.timeout_s,
                on_line=progress,
            )
        except ProcessTimeout:
            raise TsTRuntimeError(
                f"{self.launcher.name} train did not finish within {self.config.timeout_s:g}s and was stopped"
                f" (raise --trainer-option timeout_s=...); log {log_path}, last lines:\n{tail(log_path)}"
            ) from None
        if returncode != 0:
            raise TsTRuntimeError(
                f"{self.launcher.name} train failed (exit code {returncode}); log {log_path}, last lines:\n"
                f"{tail(log_path)}"
            )

    def _environment(self, work: Path, device: str) -> dict[str, str]:
        """The user's environment, minus Python path overrides that would mix the two environments
        (only LlamaFactory's own folder, where it has one), with caches inside the scratch folder
        and the device pinned."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        if self.launcher.python_path is not None:
            env["PYTHONPATH"] = self.launcher.python_path
        hf_home = work / "hf_home"
        env.update(
            {
                "HF_HOME": str(hf_home),
                "HF_DATASETS_CACHE": str(hf_home / "datasets"),
                "HF_HUB_OFFLINE": "1",  # the model is a local folder; nothing is downloaded
                "HF_DATASETS_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "WANDB_DISABLED": "true",
            }
        )
        if self.config.cpu_threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.config.cpu_threads)
        visible = self.config.gpu_ids
        if visible is None and device.startswith("cuda:"):
            visible = device.partition(":")[2]
        if device == "cpu":
            visible = ""
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        return env

    def _check_prompt(self, first: TrainingDatum, log_path: Path, settings: dict[str, Any]) -> None:
        logged = first_logged_example(log_path)
        if logged is None:
            logger.warning("LlamaFactory's log shows no tokenised example; prompt check skipped")
            return
        tokenizer = load_tokenizer(self.source, self.config.trust_remote_code)
        answer = tokenizer(first.response, add_special_tokens=False)["input_ids"]
        budget = max(8, int(settings["cutoff_len"]) - len(answer) - 1)
        expected = encode_prompt(tokenizer, first.instruction, self.config.prompt_style, budget) + answer
        if logged[: len(expected)] != expected:
            raise TsTRuntimeError(
                f"LlamaFactory (template {settings.get('template')!r}) trained on a different prompt than"
                " tst-bench scores; set --trainer-option template=NAME to the template matching the"
                " model's chat template (or use_chat_template=false with template=empty).\n"
                f"LlamaFactory: {tokenizer.decode(logged[: len(expected) + 4])!r}\n"
                f"tst-bench:    {tokenizer.decode(expected)!r}"
            )


def load_default_settings() -> dict[str, Any]:
    package = __name__.rpartition(".")[0]
    text = importlib.resources.files(package).joinpath("default_lora.yaml").read_text(encoding="utf-8")
    settings = yaml.safe_load(text)
    if not isinstance(settings, dict):
        raise TsTRuntimeError("default_lora.yaml does not hold a mapping")
    return settings


def build_train_config(
    config: LlamaFactoryConfig,
    model_path: Path,
    dataset_dir: Path,
    output_dir: Path,
    seed: int,
    on_gpu: bool,
) -> dict[str, Any]:
    """default_lora.yaml, then the training settings and the config's set fields, then `extra`,
    then what tst-bench owns."""
    settings = load_default_settings()
    settings.update(training_keys(config.training))
    settings["cutoff_len"] = config.max_seq_length
    settings["trust_remote_code"] = config.trust_remote_code
    for key in ("template", "gradient_accumulation_steps"):
        if getattr(config, key) is not None:
            settings[key] = getattr(config, key)
    if not config.use_chat_template and config.template is None:
        settings["template"] = "empty"
    settings["use_cpu"] = not on_gpu
    dtype = "bfloat16" if config.dtype == "auto" and on_gpu else config.dtype
    settings["bf16"] = dtype == "bfloat16"
    settings["fp16"] = dtype == "float16"
    settings.update(config.extra)
    settings.update(
        {
            "model_name_or_path": str(model_path),
            "dataset": DATASET_NAME,
            "dataset_dir": str(dataset_dir),
            "output_dir": str(output_dir),
            "seed": seed,
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "lora",
            "save_strategy": "no",
            "overwrite_output_dir": True,
        }
    )
    return settings


def training_keys(training: TrainingSettings) -> dict[str, Any]:
    """The LlamaFactory YAML keys that say what `training` says."""
    values: dict[str, Any] = {}
    for name, key in SETTING_KEYS.items():
        value = getattr(training, name)
        if value == ALL_LINEAR:
            value = "all"
        if value is not None:
            values[key] = ",".join(value) if isinstance(value, tuple) else value
    return values


def write_dataset(training_data: Sequence[TrainingDatum], directory: Path, system_prompt: str | None) -> None:
    """Alpaca rows (instruction / empty input / output) and the dataset_info.json naming them."""
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_write(directory / "train.jsonl") as handle:
        for datum in training_data:
            row = {"instruction": datum.instruction, "input": "", "output": datum.response}
            if system_prompt:
                row["system"] = system_prompt
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    if system_prompt:
        columns["system"] = "system"
    info = {DATASET_NAME: {"file_name": "train.jsonl", "formatting": "alpaca", "columns": columns}}
    (directory / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")


def publish_adapter(trained: Path, output_dir: Path, log_path: Path) -> None:
    """Move only the adapter's own files into `output_dir`, replacing what an earlier try left."""
    files = [trained / name for name in ADAPTER_FILES if (trained / name).exists()]
    if len(files) < 2:
        raise TsTRuntimeError(
            f"LlamaFactory train exited 0 but wrote no adapter in {trained}; log {log_path}, last lines:\n"
            f"{tail(log_path)}"
        )
    drop_base_layer_weights(trained)
    staging = output_dir.parent / f".{output_dir.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for file in files:
        shutil.move(str(file), staging / file.name)
    shutil.rmtree(output_dir, ignore_errors=True)
    staging.rename(output_dir)


def first_logged_example(log_path: Path) -> list[int] | None:
    """The token ids of the first training example, as LlamaFactory prints them before training."""
    match = _FIRST_EXAMPLE.search(log_path.read_text(encoding="utf-8", errors="replace"))
    if match is None:
        return None
    return [int(token) for token in match.group(1).replace(",", " ").split()]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class _ProgressLog:
    """Turns LlamaFactory's progress bar into a log line every 10% of the steps."""

    def __init__(self) -> None:
        self.loss: str | None = None
        self._next_report = 0.0

    def __call__(self, line: str) -> None:
        loss = _LOSS.search(line)
        if loss:
            self.loss = loss.group(1)
        match = _PROGRESS.match(line)
        if not match:
            return
        step, total = int(match.group(1)), int(match.group(2))
        if total and step / total >= self._next_report:
            self._next_report = step / total + 0.1
            loss_text = f", loss {self.loss}" if self.loss else ""
            logger.info("LlamaFactory: step %d/%d%s", step, total, loss_text)
