"""Error types that map to the CLI's exit codes.

`InputError` means the user gave us something we cannot use (exit 2, nothing written);
`TsTRuntimeError` means a run failed while working (exit 1, completed folds kept).
"""

from __future__ import annotations


class TsTError(Exception):
    """Base class of every error tst-bench raises on purpose."""

    exit_code = 1


class InputError(TsTError, ValueError):
    """Bad dataset, option, model path or config: fix the input and rerun."""

    exit_code = 2


class UnknownOptionsError(InputError):
    """Options an engine's config does not have; `names` lets a caller try them elsewhere (a
    sweep's grid key that is not the trainer's may be the predictor's)."""

    def __init__(self, message: str, names: list[str]):
        super().__init__(message)
        self.names = names


class TsTRuntimeError(TsTError, RuntimeError):
    """A run failed after it started (training crashed, a worker died, ...)."""

    exit_code = 1


def row_error(source: str, row: int, field: str | None, message: str) -> InputError:
    """An InputError that names the file, the 1-based row number and the field."""
    where = f"{source}: row {row}"
    if field:
        where += f": field '{field}'"
    return InputError(f"{where}: {message}")
