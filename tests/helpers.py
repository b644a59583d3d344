"""Helpers for tests: dataset files and running the CLI, in a subprocess or in this process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tst_bench.cli import main


def write_jsonl(path: Path, rows: Iterable[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def run_cli(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`tst-bench ARGS` in a fresh interpreter, as a user would run it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tst_bench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def run_cli_in_process(capsys, caplog, *args: str) -> subprocess.CompletedProcess:
    """`tst-bench ARGS` through `main(argv)` in this process: its exit code, its output, and its
    log as stderr, without a fresh interpreter's start-up (where a subprocess adds nothing)."""
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tst_bench"):
        code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["tst-bench", *args], code, captured.out, captured.err + caplog.text)
