"""The options that define a TsT run, shared by every command that runs one (`run`, `prune`).

Their defaults are RunConfig's (tst_bench/config.py), read from the dataclass, so the CLI, the
pytest plugin and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..config import RunConfig
from ..datasets.rows import OPEN_FORMATS
from ..errors import InputError
from ..models.options import DTYPES
from ..registry import BACKENDS, TRAINERS


def add_run_options(parser: argparse.ArgumentParser, zero_shot_by_default: bool) -> None:
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="SPEC",
        help="a .jsonl/.json/.csv/.parquet file, synthetic:KIND[?rows=N&seed=S] or hf:OWNER/NAME",
    )
    parser.add_argument(
        "--model",
        default=RunConfig.model,
        help="tiny, smollm2-135m, random-qwen2-0.5b, a model folder or hub id",
    )
    parser.add_argument(
        "--backend", default=RunConfig.backend, help=f"inference backend: {', '.join(BACKENDS)}"
    )
    parser.add_argument("--trainer", default=RunConfig.trainer, help=f"trainer: {', '.join(TRAINERS)}")
    parser.add_argument(
        "--folds", type=int, default=RunConfig.folds, metavar="K", help="k of the k-fold cross-validation"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=RunConfig.repeats,
        metavar="N",
        help="fold plans with different shuffles; s(x) and scores are averaged over them",
    )
    parser.add_argument(
        "--seed", type=int, default=RunConfig.seed, help="seed of the fold plan and of training"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="use only the first N rows")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="run directory: result.json, samples.jsonl, a file per finished fold (reruns resume)",
    )
    parser.add_argument("--overwrite", action="store_true", help="discard a different run in --out")
    if zero_shot_by_default:
        parser.add_argument(
            "--no-zero-shot", dest="zero_shot", action="store_false", help="skip the zero-shot baseline"
        )
    else:
        parser.add_argument("--zero-shot", action="store_true", help="also score the zero-shot baseline")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    parser.add_argument(
        "--device",
        default=RunConfig.device,
        help="where models run: auto (CUDA when torch sees a GPU, else cpu), cpu, cuda or cuda:N",
    )
    parser.add_argument(
        "--dtype",
        default=RunConfig.dtype,
        choices=DTYPES,
        help="weight dtype; auto: bfloat16 on a GPU that supports it, else float32",
    )
    parser.add_argument(
        "--executor", default=RunConfig.executor, help="sequential, or ray (folds spread over GPU workers)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=RunConfig.workers,
        metavar="N",
        help="ray: fold workers (0: GPUs x workers-per-GPU, or one per CPU)",
    )
    parser.add_argument(
        "--workers-per-gpu",
        type=int,
        default=RunConfig.workers_per_gpu,
        metavar="N",
        help="ray: fold workers packed on one GPU",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="ray: join this cluster (auto or HOST:PORT); default: $RAY_ADDRESS, else start one",
    )
    parser.add_argument(
        "--gpus",
        type=int,
        metavar="N",
        help="ray: GPUs of a cluster we start (default: detected; logical GPUs on CPU)",
    )
    parser.add_argument(
        "--group-by",
        action="append",
        metavar="COLUMN",
        help="group column(s) whose scores result.json lists (repeatable; default:"
        f" {', '.join(RunConfig.group_columns)} where present)",
    )
    parser.add_argument(
        "--without-options",
        choices=OPEN_FORMATS,
        help="rows without options (and without a 'format' of their own) are numeric (num) or"
        " open-ended (oe); default: such a row is an input error",
    )
    parser.add_argument(
        "--allow-duplicate-options",
        action="store_true",
        help="keep rows whose options repeat (a warning names each); default: such a row is an input error",
    )
    parser.add_argument(
        "--predictor-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a field of the backend's config, e.g. batch_size=32, max_seq_length=2048 (repeatable;"
        " VALUE is YAML)",
    )
    parser.add_argument(
        "--trainer-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a field of the trainer's config, e.g. num_epochs=3, n_estimators=300 (repeatable;"
        " VALUE is YAML)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (one log line per fold)")


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """RunConfig from the options `add_run_options` declared."""
    return RunConfig(
        dataset=args.dataset,
        model=args.model,
        backend=args.backend,
        trainer=args.trainer,
        folds=args.folds,
        repeats=args.repeats,
        seed=args.seed,
        limit=args.limit,
        out=args.out,
        zero_shot=args.zero_shot,
        save_adapters=getattr(args, "save_adapters", RunConfig.save_adapters),
        trust_remote_code=args.trust_remote_code,
        device=args.device,
        dtype=args.dtype,
        executor=args.executor,
        workers=args.workers,
        workers_per_gpu=args.workers_per_gpu,
        ray_address=args.ray_address,
        ray_gpus=args.gpus,
        predictor_options=parse_options(args.predictor_option, "--predictor-option"),
        trainer_options=parse_options(args.trainer_option, "--trainer-option"),
        group_columns=tuple(args.group_by) if args.group_by else RunConfig.group_columns,
        without_options=args.without_options,
        allow_duplicate_options=args.allow_duplicate_options,
    )


def show_progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def parse_options(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """KEY=VALUE pairs; values are YAML scalars/lists (safe_load), so 5, 1e-3, true, [a, b] work."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as error:
            raise InputError(f"{flag} {key}: cannot parse {value!r}: {error}") from None
    return options
