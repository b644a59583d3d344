"""Load a dataset spec (file path or `synthetic:KIND`) into validated blind QA records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import InputError, row_error
from ..schemas import QARecord
from . import synthetic
from .rows import DEFAULT_GROUP_COLUMNS, check_unique_ids, row_to_record

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class Dataset:
    name: str
    records: list[QARecord]

    @property
    def fingerprint(self) -> str:
        """Content hash, so a resumed run can tell the data changed under it."""
        digest = hashlib.sha256()
        for record in self.records:
            digest.update(record.model_dump_json().encode())
        return digest.hexdigest()[:16]

    @property
    def formats(self) -> set[str]:
        return {record.format for record in self.records}


def load_dataset(
    spec: str,
    limit: int | None = None,
    group_columns: Sequence[str] = DEFAULT_GROUP_COLUMNS,
) -> Dataset:
    """Records for `spec`: a .jsonl/.json/.csv/.parquet file, `synthetic:KIND[?rows=N&seed=S]` or
    `hf:OWNER/NAME[?split=...]` (see datasets.hub)."""
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be positive, got {limit}")
    if spec.startswith("synthetic:"):
        records = synthetic.generate(parse_synthetic_spec(spec))
        name = spec
    elif spec.startswith("hf:"):
        from .hub import load_hub_records

        name, records = load_hub_records(spec, group_columns)
    else:
        path = Path(spec).expanduser()
        records = list(_records_from_file(path, group_columns, limit))
        name = str(path)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise InputError(f"{spec}: the dataset has no rows")
    check_unique_ids(records, name)
    return Dataset(name=name, records=records)


def parse_synthetic_spec(spec: str) -> synthetic.SyntheticSpec:
    kind, _, query = spec.removeprefix("synthetic:").partition("?")
    names = {"rows": int, "seed": int, "strength": float, "fraction": float, "options": int}
    params: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in names:
            raise InputError(f"{spec}: unknown parameter {key!r}; known: {sorted(names)}")
        try:
            params[key] = names[key](value)
        except ValueError:
            raise InputError(f"{spec}: parameter {key!r} must be a number, got {value!r}") from None
    renamed = {"fraction": "shortcut_fraction", "options": "n_options"}
    kwargs = {renamed.get(key, key): value for key, value in params.items()}
    if kind not in synthetic.SYNTHETIC_KINDS:
        raise InputError(
            f"{spec}: unknown synthetic dataset {kind!r}; choose one of"
            f" {', '.join('synthetic:' + k for k in synthetic.SYNTHETIC_KINDS)}"
        )
    return synthetic.SyntheticSpec(kind=kind, **kwargs)


def _records_from_file(path: Path, group_columns: Sequence[str], limit: int | None) -> Iterator[QARecord]:
    if not path.exists():
        raise InputError(f"{path}: dataset file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a dataset file ({', '.join(FILE_SUFFIXES)})")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise InputError(
            f"{path}: unsupported dataset type {suffix or '(none)'!r}; use one of {FILE_SUFFIXES}"
            " or a synthetic:KIND spec"
        )
    rows = {".jsonl": _jsonl_rows, ".json": _json_rows, ".csv": _csv_rows, ".parquet": _parquet_rows}
    for row_number, row in rows[suffix](path):
        if limit is not None and row_number > limit:
            return
        yield row_to_record(row, row_number, str(path), group_columns)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8") as handle:
        for row_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield row_number, json.loads(line)
            except json.JSONDecodeError as error:
                raise row_error(str(path), row_number, None, f"invalid JSON: {error.msg}") from None


def _json_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    yield from enumerate(data, start=1)


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read CSV: {error}") from None
    yield from _frame_rows(frame)


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
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
