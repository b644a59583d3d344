"""`python -m tst_bench`, `--version`, and help text with the default of every option of every command."""

import argparse
import subprocess
import sys

import pytest

import tst_bench
from tst_bench.cli import build_parser


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"tst-bench": parser, **subparsers.choices}


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_says_what_it_does_and_its_default(name):
    parser = commands()[name]
    formatter = parser.formatter_class(prog=parser.prog)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        what = "/".join(action.option_strings) or action.dest
        text = formatter._expand_help(action) if action.help else ""
        assert text.strip(), f"{name} {what}: no help text"
        flag = action.nargs == 0  # its default is its absence
        if action.option_strings and not flag and action.default not in (None, [], argparse.SUPPRESS):
            assert "default" in text, f"{name} {what}: the help does not give the default ({text!r})"
            shown = f"{action.default:g}" if isinstance(action.default, float) else str(action.default)
            assert shown in text, f"{name} {what}: {text!r} lacks {action.default!r}"


def python_m(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tst_bench", *args], capture_output=True, text=True, timeout=120
    )


def test_python_m_tst_bench_is_the_command_with_its_version():
    version = python_m("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"tst-bench {tst_bench.__version__}")
    run_help = python_m("run", "--help")
    assert run_help.returncode == 0, run_help.stderr
    text = " ".join(run_help.stdout.split())
    for shown in (
        "--folds K k of the k-fold cross-validation (default: 5)",
        "--seed SEED seed of the fold plan and of training (default: 0)",
        "--device DEVICE where models run",
        "--trainer-option KEY=VALUE a field of the trainer's config",
    ):
        assert shown in text
    missing = python_m("run")
    assert missing.returncode == 2 and "the following arguments are required: --dataset" in missing.stderr
