"""`tst-bench run`: one k-fold TsT into a resumable run directory (result.json + samples.jsonl).

The output ends with the run's verdict (tst_bench/verdict.py), the line a benchmark designer
looks for; result.json carries it too.
"""

from __future__ import annotations

import argparse

from ..schemas import LabelIssues
from ..verdict import verdict_of
from .run_options import add_run_options, run_config_from_args, show_progress


def add_run_command(commands) -> None:
    run = commands.add_parser("run", help="run a k-fold TsT and write result.json + samples.jsonl")
    add_run_options(run, zero_shot_by_default=True)
    run.add_argument("--save-adapters", action="store_true", help="keep each fold's adapter")
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from ..engine import run_tst

    run = run_tst(run_config_from_args(args), overwrite=args.overwrite, progress=show_progress(args))
    print_summary(run.result)
    print(label_issues_line(run.result.label_issues))
    print(f"results: {run.store.result_path}  samples: {run.store.samples_path}")
    print(verdict_of(run.result).text)
    return 0


def label_issues_line(found: LabelIssues | None) -> str:
    if found is None or found.status == "not applicable":
        return f"answer keys: not checked ({found.note if found else 'no check recorded'})"
    if found.status == "cleanlab not installed":
        return f"answer keys: {found.note}"
    if found.reliable_from is None:
        return f"answer keys: none questioned ({found.note})"
    first = ", ".join(issue.id for issue in found.issues[:5])
    listed = f" (first: {first}; all in result.json)" if found.issues else ""
    return (
        f"answer keys: {len(found.issues)} of {found.checked} possibly wrong, where the held-out models"
        f" confidently disagree (cleanlab; reliable from p >= {found.reliable_from:.2f}){listed}"
    )


def print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"TsT {result.dataset} | {result.model} | {result.backend}/{result.trainer}")
    table.add_column("")
    table.add_column(result.metric, justify="right")
    low, high = result.ci95
    table.add_row("TsT", f"{result.score:.3f} ± {result.score_std:.3f}  (95% CI {low:.3f}-{high:.3f})")
    baselines = result.baselines
    zero_shot = baselines.zero_shot_status if baselines.zero_shot is None else f"{baselines.zero_shot:.3f}"
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
