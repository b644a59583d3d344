"""`tst-bench report` and `tst-bench compare`: argument parsing and console output.

compare exits 0 when every check passes, 1 when one fails (so CI can gate on it), 2 on bad input.
Heavy imports (matplotlib, the loaders) happen inside the handlers so `tst-bench --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ..memory import DEFAULT_TOLERANCE_MIB
from .checks import FAIL_ON, Thresholds

logger = logging.getLogger(__name__)

#: console width when printing to a file or pipe (rich would assume 80 columns)
LOG_WIDTH = 160
INPUTS_HELP = "run directories, result.json or pytest-benchmark JSON files, or folders holding them"


def add_report_commands(commands) -> None:
    report = commands.add_parser(
        "report", help="write reports/report.html + report.md from run directories or pytest-benchmark JSON"
    )
    report.add_argument("inputs", nargs="+", type=Path, metavar="RUN_DIR_OR_BENCHMARK_JSON", help=INPUTS_HELP)
    report.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default: reports)")
    report.add_argument("--top", type=int, default=10, help="most biased samples to list (default: 10)")
    add_threshold_arguments(report)
    report.set_defaults(handler=report_command)

    compare = commands.add_parser(
        "compare",
        help="compare runs with the first as baseline; exit 1 on a significant score rise (--fail-on),"
        " memory not released or a speedup drop",
    )
    compare.add_argument(
        "inputs", nargs="+", type=Path, metavar="RUN_DIR_OR_BENCHMARK_JSON", help=INPUTS_HELP
    )
    compare.add_argument("--out", type=Path, help="also write comparison.md/.html/.json into this folder")
    add_threshold_arguments(compare)
    compare.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default=Thresholds.fail_on,
        help="which significant score change fails: rise (the benchmark got easier without looking:"
        " a benchmark designer's gate), drop (the harness scores lower: the harness's own CI) or"
        f" change (both) (default: {Thresholds.fail_on})",
    )
    compare.add_argument(
        "--score-tolerance",
        type=float,
        default=0.0,
        help="score change that never fails: the per-sample difference of paired runs (a significant"
        " change beyond it fails), else the distance beyond the baseline's 95%% CI (default: 0)",
    )
    compare.add_argument(
        "--speedup-drop",
        type=float,
        default=0.10,
        help="relative speedup drop at equal GPU/worker count that fails (default: 0.10)",
    )
    compare.set_defaults(handler=compare_command)


def add_threshold_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memory-tolerance-mib",
        type=float,
        default=DEFAULT_TOLERANCE_MIB,
        help="MiB a device may still hold after a fold's clean-up above its level before"
        f" (default: {DEFAULT_TOLERANCE_MIB:g})",
    )
    parser.add_argument(
        "--check-rss", action="store_true", help="also check RSS samples (CPU runs) for memory release"
    )


def thresholds_from(args: argparse.Namespace) -> Thresholds:
    return Thresholds(
        fail_on=getattr(args, "fail_on", Thresholds.fail_on),
        score_tolerance=getattr(args, "score_tolerance", 0.0),
        memory_tolerance_mib=args.memory_tolerance_mib,
        speedup_drop=getattr(args, "speedup_drop", 0.10),
        check_rss=args.check_rss,
    )


def report_command(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from .write import write_report

    if args.top < 0:
        raise InputError(f"--top must be 0 or more, got {args.top}")
    files = write_report(args.inputs, args.out, top_biased=args.top, thresholds=thresholds_from(args))
    print(f"report: {files.html}  markdown: {files.markdown}  figures: {len(files.figures)}")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from .compare import compare_inputs, comparison_document

    thresholds = thresholds_from(args)
    if not 0 <= thresholds.speedup_drop < 1:
        raise InputError(f"--speedup-drop must be in [0, 1), got {thresholds.speedup_drop}")
    comparison = compare_inputs(args.inputs, thresholds)
    document = comparison_document(comparison)
    print_document(document)
    if args.out is not None:
        write_comparison(comparison, document, args.out)
    failed = comparison.regressions
    if failed:
        logger.error("%d failed check(s) against %s", len(failed), comparison.inputs[0])
        return 1
    logger.info("no failed checks against %s (score checked for a %s)", comparison.inputs[0], args.fail_on)
    return 0


def write_comparison(comparison, document, out: Path) -> None:
    from ..jsonl import atomic_write, write_json
    from .html import render_html
    from .markdown import render_markdown

    with atomic_write(out / "comparison.md") as handle:
        handle.write(render_markdown(document))
    with atomic_write(out / "comparison.html") as handle:
        handle.write(render_html(document))
    write_json(out / "comparison.json", comparison.model_dump(mode="json"))
    print(f"comparison: {out / 'comparison.html'}  markdown: {out / 'comparison.md'}")


def print_document(document) -> None:
    """The document's tables and notes on the console (rich), section by section."""
    from rich.console import Console
    from rich.table import Table as RichTable

    from .compare import FAILED
    from .document import Note, Paragraph, Table

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=LOG_WIDTH)  # a log or CI: rows stay on one line, cells uncut
    console.print(f"[bold]{document.title}[/bold]: {document.subtitle}", highlight=False)
    for section in document.sections:
        console.rule(section.title)
        for block in section.blocks:
            if isinstance(block, Table):
                table = RichTable()
                for index, column in enumerate(block.columns):
                    table.add_column(column, justify="right" if index in block.numeric else "left")
                for row in block.rows:
                    table.add_row(*row)
                console.print(table)
            elif isinstance(block, Note):
                style = "bold red" if block.text.startswith(FAILED) else "yellow"
                console.print(block.text, style=style, highlight=False, markup=False)
            elif isinstance(block, Paragraph):
                console.print(block.text, highlight=False, markup=False)
