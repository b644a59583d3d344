"""`tst-bench prune`: Iterative Bias Pruning (tst_bench/ibp) from the command line."""

from __future__ import annotations

import argparse

from ..ibp.runner import PruneConfig
from .run_options import add_run_options, run_config_from_args, show_progress


def add_prune_command(commands) -> None:
    prune = commands.add_parser(
        "prune",
        help="Iterative Bias Pruning: remove the highest-s(x) rows round by round, with a random control",
        description="Each round runs a k-fold TsT (a normal, resumable run directory), removes the"
        " rows with the highest bias score s(x) and diagnoses again, until the budget is spent or"
        " max s(x) <= --tau. A random-pruning control with the same per-round counts follows.",
    )
    add_run_options(prune, zero_shot_by_default=False)
    # Unset options (None) leave PruneConfig's defaults in place, so they are written once, there.
    prune.add_argument(
        "--budget",
        help=f"rows to remove in all: a count or a percentage (default: {percent(PruneConfig.budget)})",
    )
    prune.add_argument(
        "--batch-size",
        help=f"rows removed per round: a count or a percentage (default: {percent(PruneConfig.batch_size)})",
    )
    prune.add_argument(
        "--tau", type=float, help="stop once the largest s(x) is at most this (default: no such stop)"
    )
    prune.add_argument(
        "--balance", action="store_true", help="spread removals over answer classes by their sizes"
    )
    prune.add_argument(
        "--min-class-rows", type=int, help="with --balance, rows each answer class keeps (default: --folds)"
    )
    prune.add_argument("--no-control", action="store_true", help="skip the random-pruning control")
    prune.add_argument(
        "--flag",
        help="metadata column marking known-biased rows, for the precision per round ('' for none;"
        f" default: {PruneConfig.flag})",
    )
    prune.add_argument("--no-plot", action="store_true", help="do not draw curves.png")
    prune.set_defaults(handler=prune_command)


def percent(count: str) -> str:
    """A count as argparse help shows it: "40%" must be written "40%%" there."""
    return count.replace("%", "%%")


def prune_command(args: argparse.Namespace) -> int:
    from ..ibp.runner import run_prune

    given = {
        "budget": args.budget,
        "batch_size": args.batch_size,
        "tau": args.tau,
        "min_class_rows": args.min_class_rows,
        "flag": args.flag,
    }
    options = {name: value for name, value in given.items() if value is not None}
    if options.get("flag") == "":
        options["flag"] = None  # --flag '': no flag column, so no precision per round
    config = PruneConfig(
        run=run_config_from_args(args),
        balance=args.balance,
        control=not args.no_control,
        plot=not args.no_plot,
        **options,
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
