"""The `tst-bench` entry point: one parser with a sub-command each, errors mapped to exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import InputError, TsTError
from ..reports.commands import add_report_commands
from .prune import add_prune_command
from .run import add_run_command
from .sweep import add_sweep_command
from .synth import add_synth_command

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


class HelpWithDefaults(argparse.HelpFormatter):
    """Each option's help ends with its default, unless it has none (None, False, an empty list)
    or already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if not action.option_strings or action.nargs == 0 or "default" in text:
            return text  # a positional argument or a flag (its default is its absence)
        if default is None or default is argparse.SUPPRESS or default == []:
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """The parser of `tst-bench` and of each of its commands: help shows every default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="tst-bench",
        description="Test-set Stress-Test: how much of a benchmark a blind model learns from text.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    add_run_command(commands)
    add_synth_command(commands)
    add_report_commands(commands)
    add_prune_command(commands)
    add_sweep_command(commands)
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
