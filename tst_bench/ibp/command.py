"""`tst-bench prune`: Iterative Bias Pruning from the command line (registered in cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_prune_command(commands) -> None:
    prune = commands.add_parser(
        "prune",
        help="Iterative Bias Pruning: remove the highest-s(x) rows round by round, with a random control",
        description="Each round runs a k-fold TsT (a normal, resumable run directory), removes the"
        " rows with the highest bias score s(x) and diagnoses again, until the budget is spent or"
        " max s(x) <= --tau. A random-pruning control with the same per-round counts follows.",
    )
    prune.add_argument("--dataset", required=True, help="file, synthetic:KIND or hf:OWNER/NAME spec")
    prune.add_argument("--out", type=Path, required=True, help="prune directory (resumable)")
    prune.add_argument("--budget", default="40%", help="rows to remove in all: a count or a percentage")
    prune.add_argument("--batch-size", default="10%", help="rows removed per round: a count or a percentage")
    prune.add_argument("--tau", type=float, help="stop once the largest s(x) is at most this")
    prune.add_argument(
        "--balance", action="store_true", help="spread removals over answer classes by their sizes"
    )
    prune.add_argument(
        "--min-class-rows", type=int, help="with --balance, rows each answer class keeps (default: --folds)"
    )
    prune.add_argument("--no-control", action="store_true", help="skip the random-pruning control")
    prune.add_argument(
        "--flag", default="shortcut", help="metadata column marking known-biased rows (precision per round)"
    )
    prune.add_argument("--no-plot", action="store_true", help="do not draw curves.png")
    prune.add_argument("--model", default="tiny", help="model for LLM backends (unused by rf)")
    prune.add_argument("--backend", default="hf", help="predictor: hf, rf, ... (default: hf)")
    prune.add_argument("--trainer", default="peft", help="trainer: peft, rf, ... (default: peft)")
    prune.add_argument("--folds", type=int, default=5)
    prune.add_argument("--repeats", type=int, default=1)
    prune.add_argument("--seed", type=int, default=0)
    prune.add_argument("--limit", type=int, help="use only the first N rows")
    prune.add_argument(
        "--zero-shot", action="store_true", help="also score the zero-shot baseline each round"
    )
    prune.add_argument("--overwrite", action="store_true", help="discard a different prune in --out")
    prune.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    prune.add_argument("--device", default="auto")
    prune.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    prune.add_argument("--executor", default="sequential")
    prune.add_argument("--workers", type=int, default=1)
    prune.add_argument("--group-by", action="append", metavar="COLUMN", help="group column(s) to report")
    prune.add_argument("--predictor-option", action="append", default=[], metavar="KEY=VALUE")
    prune.add_argument("--trainer-option", action="append", default=[], metavar="KEY=VALUE")
    prune.add_argument("--no-progress", action="store_true")
    prune.set_defaults(handler=prune_command)


def prune_command(args: argparse.Namespace) -> int:
    from ..cli import parse_options
    from ..config import RunConfig
    from ..datasets.rows import DEFAULT_GROUP_COLUMNS
    from .runner import PruneConfig, run_prune

    run = RunConfig(
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
        trust_remote_code=args.trust_remote_code,
        device=args.device,
        dtype=args.dtype,
        executor=args.executor,
        workers=args.workers,
        predictor_options=parse_options(args.predictor_option, "--predictor-option"),
        trainer_options=parse_options(args.trainer_option, "--trainer-option"),
        group_columns=tuple(args.group_by) if args.group_by else DEFAULT_GROUP_COLUMNS,
    )
    config = PruneConfig(
        run=run,
        budget=args.budget,
        batch_size=args.batch_size,
        tau=args.tau,
        balance=args.balance,
        min_class_rows=args.min_class_rows,
        control=not args.no_control,
        flag=args.flag or None,
        plot=not args.no_plot,
    )
    result = run_prune(
        config, overwrite=args.overwrite, progress=not args.no_progress and sys.stderr.isatty()
    )
    print_trajectories(result)
    return 0


def print_trajectories(result) -> None:
    from rich.console import Console
    from rich.table import Table

    ibp, control = result.ibp, result.control
    metric = ibp.rounds[0].metric
    table = Table(title=f"IBP {ibp.dataset} | stopped by {ibp.stop_reason}")
    for column in ("round", "rows", "removed", f"IBP {metric}", "IBP precision"):
        table.add_column(column, justify="right")
    if control is not None:
        table.add_column(f"random {metric}", justify="right")
        table.add_column("random precision", justify="right")
    for index, entry in enumerate(ibp.rounds):
        row = [str(entry.round), str(entry.n_rows), str(entry.removed_before), f"{entry.score:.3f}"]
        row.append(_percent(entry.precision))
        if control is not None and index < len(control.rounds):
            other = control.rounds[index]
            row += [f"{other.score:.3f}", _percent(other.precision)]
        table.add_row(*row)
    table.caption = (
        f"chance {ibp.rounds[0].chance:.3f}; precision = share of removed rows flagged {ibp.flag!r}"
    )
    Console().print(table)
    print(
        f"trajectory: {result.root / 'ibp' / 'trajectory.json'}  pruned: {result.root / ibp.pruned_dataset}"
    )
    if result.plot is not None:
        print(f"curves: {result.plot}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
