"""The raw rows of a dataset file (JSONL, JSON, CSV or parquet), for local files and hub downloads alike.

`read_rows` yields (row number, row) pairs. The row number is what messages name and what a row
without an id is called (`row-N`): the line in a JSONL file, the record in the other formats. It
is not a count of records (a JSONL file may hold blank lines), so callers count what they take.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, row_error

#: The file types a dataset may come in, in the order the hub loader prefers them when a split
#: ships in several (CV-Bench's test split is both a small JSONL and a 392 MB parquet).
SUFFIXES = (".jsonl", ".parquet", ".json", ".csv")


def read_rows(path: Path, columns: Sequence[str] | None = None) -> Iterator[tuple[int, Any]]:
    """The rows of `path`; `columns` limits a parquet file to those of them it has, so image and
    video columns are never decoded."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _parquet_rows(path, columns)
    text_readers = {".jsonl": _jsonl_rows, ".json": _json_rows, ".csv": _csv_rows}
    if suffix not in text_readers:
        raise InputError(
            f"{path}: unsupported dataset type {suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}"
            " (or a synthetic:KIND or hf:OWNER/NAME spec)"
        )
    return text_readers[suffix](path)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise row_error(str(path), line_number, None, f"invalid JSON: {error.msg}") from None
                yield line_number, row
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error, unit="row") from None


def _json_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    yield from enumerate(data, start=1)


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(f"{path}: cannot read CSV: {error}") from None
    yield from _frame_rows(frame)


def _parquet_rows(path: Path, columns: Sequence[str] | None) -> Iterator[tuple[int, Any]]:
    import pandas as pd
    import pyarrow.parquet as pq

    try:
        wanted = None
        if columns:
            available = pq.read_schema(path).names
            wanted = [name for name in columns if name in available]
        frame = pd.read_parquet(path, columns=wanted)
    except Exception as error:  # pyarrow raises many unrelated types for a broken file
        raise InputError(f"{path}: cannot read parquet: {error}") from None
    yield from _frame_rows(frame)


def _frame_rows(frame: Any) -> Iterator[tuple[int, Any]]:
    for row_number, row in enumerate(frame.to_dict(orient="records"), start=1):
        yield row_number, {key: _plain(value) for key, value in row.items()}


def _plain(value: Any) -> Any:
    """Pandas/numpy scalars and arrays as plain Python values; missing values as None."""
    if hasattr(value, "tolist"):
        return value.tolist()
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _not_utf8(path: Path, error: UnicodeDecodeError, unit: str = "line") -> InputError:
    """Where the first byte that is not UTF-8 sits: the line (as text mode counts lines) and column.

    Decoders fail somewhere in a buffered chunk, so the place is found again in the file's bytes.
    `unit` is "row" for JSONL, whose rows are its lines.
    """
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as first:
        before = data[: first.start].decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        line_number = before.count("\n") + 1
        column = len(before) - before.rfind("\n")
        return InputError(
            f"{path}: {unit} {line_number}: not UTF-8 text: byte 0x{data[first.start]:02x} at column"
            f" {column}; save the file as UTF-8"
        )
    return InputError(f"{path}: not UTF-8 text ({error}); save the file as UTF-8")
