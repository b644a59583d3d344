"""`tst-bench`: run a TsT from the command line, or write a synthetic benchmark.

Exit codes: 0 success, 1 the run failed while working (completed folds stay on disk; rerun the
same command to resume), 2 bad input (nothing written), 130 interrupted (as 1, resumable).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, TsTError
from .ibp.command import add_prune_command
from .reports.commands import add_report_commands

logger = logging.getLogger("tst_bench")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose - args.quiet)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except InputError as error:
        logger.error("%s", error)
        return error.exit_code
    except TsTError as error:
        logger.error("%s", error)
        return error.exit_code
    except KeyboardInterrupt:
        logger.error("interrupted; finished folds are saved, rerun the same command to resume")
        return 130
    except Exception as error:  # a crash inside an engine: say what broke, keep the exit code honest
        logger.error(
            "failed: %s: %s (finished folds are saved; rerun the same command to resume; -v shows"
            " the traceback)",
            type(error).__name__,
            error,
            exc_info=args.verbose > 0,
        )
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tst-bench",
        description="Test-set Stress-Test: how much of a benchmark a blind model learns from text.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_command(commands)
    add_synth_command(commands)
    add_report_commands(commands)
    add_prune_command(commands)
    return parser


def configure_logging(level_shift: int) -> None:
    level = logging.INFO - 10 * level_shift
    logging.basicConfig(
        level=max(logging.DEBUG, min(logging.CRITICAL, level)),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("transformers", "peft", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))


# --- run ---------------------------------------------------------------------------------


def add_run_command(commands) -> None:
    run = commands.add_parser("run", help="run a k-fold TsT and write result.json + samples.jsonl")
    add_run_options(run, zero_shot_by_default=True)
    run.add_argument("--save-adapters", action="store_true", help="keep each fold's adapter")
    run.set_defaults(handler=run_command)


def add_run_options(parser: argparse.ArgumentParser, zero_shot_by_default: bool) -> None:
    """The options that define a TsT run, shared by every command that runs one."""
    parser.add_argument(
        "--dataset", required=True, help="file (.jsonl/.json/.csv/.parquet), synthetic:KIND or hf:ID"
    )
    parser.add_argument("--model", default="tiny", help="tiny, smollm2-135m, a model directory or hub id")
    parser.add_argument("--backend", default="hf", help="inference backend (default: hf)")
    parser.add_argument("--trainer", default="peft", help="trainer (default: peft)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="use only the first N rows")
    parser.add_argument("--out", type=Path, required=True, help="output directory (resumable)")
    parser.add_argument("--overwrite", action="store_true", help="discard a different run in --out")
    if zero_shot_by_default:
        parser.add_argument(
            "--no-zero-shot", dest="zero_shot", action="store_false", help="skip the zero-shot baseline"
        )
    else:
        parser.add_argument("--zero-shot", action="store_true", help="also score the zero-shot baseline")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument(
        "--executor", default="sequential", help="sequential, or ray (folds spread over GPU workers)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="ray: fold workers (0: GPUs x workers-per-GPU, or one per CPU)"
    )
    parser.add_argument("--workers-per-gpu", type=int, default=1, help="ray: fold workers packed on one GPU")
    parser.add_argument(
        "--ray-address",
        help="ray: join this cluster (auto or HOST:PORT); default: $RAY_ADDRESS, else start one",
    )
    parser.add_argument(
        "--gpus", type=int, help="ray: GPUs of a cluster we start (default: detected; logical GPUs on CPU)"
    )
    parser.add_argument("--group-by", action="append", metavar="COLUMN", help="group column(s) to report")
    parser.add_argument("--predictor-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--trainer-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-progress", action="store_true")


def run_config_from_args(args: argparse.Namespace):
    """RunConfig from the options `add_run_options` declared."""
    from .config import RunConfig
    from .datasets.rows import DEFAULT_GROUP_COLUMNS

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
        save_adapters=getattr(args, "save_adapters", False),
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
        group_columns=tuple(args.group_by) if args.group_by else DEFAULT_GROUP_COLUMNS,
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


def run_command(args: argparse.Namespace) -> int:
    from .engine import run_tst

    run = run_tst(run_config_from_args(args), overwrite=args.overwrite, progress=show_progress(args))
    print_summary(run.result)
    print(f"results: {run.store.result_path}  samples: {run.store.samples_path}")
    return 0


def print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"TsT {result.dataset} | {result.model} | {result.backend}/{result.trainer}")
    table.add_column("")
    table.add_column(result.metric, justify="right")
    low, high = result.ci95
    table.add_row("TsT", f"{result.score:.3f} ± {result.score_std:.3f}  (95% CI {low:.3f}-{high:.3f})")
    baselines = result.baselines
    zero_shot = "skipped" if baselines.zero_shot is None else f"{baselines.zero_shot:.3f}"
    table.add_row("zero-shot", zero_shot)
    table.add_row("majority", f"{baselines.majority:.3f}")
    table.add_row("chance", f"{baselines.chance:.3f}")
    for fold in result.folds:
        table.add_row(
            f"repeat {fold.repeat} fold {fold.fold}",
            f"{fold.score:.3f}  ({fold.n_test} held out, {fold.timings.total_s:.1f}s)",
        )
    table.caption = f"{result.n_samples} samples, wall {result.wall_s:.1f}s"
    Console().print(table)


# --- synth -------------------------------------------------------------------------------


def add_synth_command(commands) -> None:
    synth = commands.add_parser("synth", help="write the synthetic benchmark as JSONL")
    synth.add_argument("--kind", choices=["shortcut", "control", "numeric"], default="shortcut")
    synth.add_argument("--rows", type=int, default=600)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--strength", type=float, default=0.9, help="P(answer = cue's answer | cue)")
    synth.add_argument("--fraction", type=float, default=0.4, help="share of questions with a cue")
    synth.add_argument("--options", type=int, default=4, help="options per question")
    synth.add_argument("--out", type=Path, required=True, help="output .jsonl file")
    synth.set_defaults(handler=synth_command)


def synth_command(args: argparse.Namespace) -> int:
    from .datasets.export import write_records
    from .datasets.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(
        kind=args.kind,
        rows=args.rows,
        seed=args.seed,
        strength=args.strength,
        shortcut_fraction=args.fraction,
        n_options=args.options,
    )
    records = generate(spec)
    write_records(args.out, records)
    ceiling = spec.expected_ceiling()
    logger.info(
        "wrote %d %s rows to %s%s",
        len(records),
        spec.kind,
        args.out,
        f" (expected shortcut ceiling {ceiling:.3f})" if ceiling is not None else "",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
