"""`tst-bench sweep`: a grid of settings, one resumable TsT run each, judged by nested cross-validation."""

from __future__ import annotations

import argparse

from ..sweep.grid import merge_grids, parse_grid_flags, read_grid_file
from ..sweep.runner import SweepConfig
from ..sweep.schema import SweepResult
from .run_options import add_run_options, run_config_from_args, show_progress


def add_sweep_command(commands) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="a grid of trainer/predictor settings: one TsT run per configuration, best and nested scores",
        description="Runs one ordinary, resumable TsT run per configuration of the grid (the run"
        " options apply to every one) and writes DIR/sweep.json: every configuration's score, the"
        " best one (optimistic: chosen on the folds that score it) and the nested cross-validation"
        " score (honest: each outer fold's configuration chosen by an inner k-fold on its training"
        " rows only), which gives the sweep's verdict.",
    )
    add_run_options(sweep, zero_shot_by_default=False)
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a trainer option (or a predictor option, where it names one; trainer.KEY /"
        " predictor.KEY say which) and its values (repeatable; the grid is every combination;"
        " values are YAML)",
    )
    sweep.add_argument(
        "--grid-file",
        metavar="FILE",
        help="a YAML file: a mapping KEY: [V1, V2] (or 'grid:' such a mapping and 'configs:' a list"
        " of configurations to add)",
    )
    sweep.add_argument(
        "--inner-folds",
        type=int,
        metavar="K",
        help="folds of the nested cross-validation's inner k-fold (default: --folds)",
    )
    sweep.add_argument(
        "--no-nested",
        action="store_true",
        help="skip nested cross-validation (no honest score, so no verdict; saves the inner runs)",
    )
    sweep.set_defaults(handler=sweep_command)


def sweep_command(args: argparse.Namespace) -> int:
    from ..sweep.runner import run_sweep

    grid, listed = parse_grid_flags(args.grid), []
    if args.grid_file:
        from_file, listed = read_grid_file(args.grid_file)
        grid = merge_grids(grid, from_file)
    config = SweepConfig(
        run=run_config_from_args(args),
        grid=grid,
        listed=listed,
        inner_folds=0 if args.no_nested else args.inner_folds,
    )
    result = run_sweep(config, overwrite=args.overwrite, progress=show_progress(args))
    print_sweep(result)
    print(f"sweep: {args.out / 'sweep.json'}")
    if result.verdict is None:
        print("no verdict: nested cross-validation was skipped (--no-nested); the best score is optimistic")
    else:
        print(result.verdict.text)
    return 0


def print_sweep(result: SweepResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Sweep {result.dataset} | {result.model} | {result.backend}/{result.trainer}")
    table.add_column("configuration", overflow="fold")
    table.add_column(result.metric, justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("seconds", justify="right")
    if result.nested is not None:
        table.add_column("chosen for outer folds", justify="right")
    for entry in result.configs:
        row = [
            entry.name,
            f"{entry.score:.3f}",
            f"{entry.ci95[0]:.3f}-{entry.ci95[1]:.3f}",
            f"{entry.seconds:.1f}",
        ]
        if result.nested is not None:
            chosen = [
                f"{outer.repeat}/{outer.fold}" for outer in result.nested.outer if outer.chosen == entry.name
            ]
            row.append(", ".join(chosen) or "-")
        table.add_row(*row)
    best = result.best
    table.add_section()
    table.add_row("best (optimistic)", f"{best.score:.3f}", f"{best.ci95[0]:.3f}-{best.ci95[1]:.3f}", "")
    if result.nested is not None:
        nested = result.nested
        table.add_row(
            f"nested ({nested.inner_folds}-fold inner)",
            f"{nested.score:.3f}",
            f"{nested.ci95[0]:.3f}-{nested.ci95[1]:.3f}",
            f"{nested.seconds:.1f}",
        )
    baselines = result.baselines
    gap = "" if result.gap_points is None else f"; best - nested {result.gap_points:+.1f} points"
    table.caption = (
        f"majority {baselines.majority:.3f}, chance {baselines.chance:.3f}{gap}; wall {result.wall_s:.1f}s"
    )
    Console().print(table)
