"""`tst-bench prune`: Iterative Bias Pruning from the command line (registered in cli.py)."""

from __future__ import annotations

import argparse


def add_prune_command(commands) -> None:
    from ..cli import add_run_options

    prune = commands.add_parser(
        "prune",
        help="Iterative Bias Pruning: remove the highest-s(x) rows round by round, with a random control",
        description="Each round runs a k-fold TsT (a normal, resumable run directory), removes the"
        " rows with the highest bias score s(x) and diagnoses again, until the budget is spent or"
        " max s(x) <= --tau. A random-pruning control with the same per-round counts follows.",
    )
    add_run_options(prune, zero_shot_by_default=False)
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
    prune.set_defaults(handler=prune_command)


def prune_command(args: argparse.Namespace) -> int:
    from ..cli import run_config_from_args, show_progress
    from .runner import PruneConfig, run_prune

    run = run_config_from_args(args)
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
    result = run_prune(config, overwrite=args.overwrite, progress=show_progress(args))
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
