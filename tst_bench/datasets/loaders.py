"""Load a dataset spec (a file, `synthetic:KIND` or `hf:OWNER/NAME`) into validated blind QA records."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import InputError
from ..schemas import QARecord
from .hub import load_hub_records
from .readers import SUFFIXES, read_rows
from .rows import DEFAULT_GROUP_COLUMNS, DEFAULT_RULES, RowRules, check_unique_ids, row_to_record
from .synthetic import SYNTHETIC_KINDS, SyntheticSpec, generate


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


def load_dataset(
    spec: str,
    limit: int | None = None,
    group_columns: Sequence[str] = DEFAULT_GROUP_COLUMNS,
    rules: RowRules = DEFAULT_RULES,
) -> Dataset:
    """Records for `spec`: a .jsonl/.json/.csv/.parquet file, `synthetic:KIND[?rows=N&seed=S]` or
    `hf:OWNER/NAME[?split=...]` (see datasets.hub). `rules` are what the command declares about
    its rows (datasets.rows.RowRules)."""
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be positive, got {limit}")
    name, all_records = _records(spec, group_columns, rules)
    records = list(islice(all_records, limit))  # records, not lines: rows after the limit are never read
    if not records:
        raise InputError(f"{spec}: the dataset has no rows")
    check_unique_ids(records, name)
    return Dataset(name=name, records=records)


def _records(spec: str, group_columns: Sequence[str], rules: RowRules) -> tuple[str, Iterator[QARecord]]:
    """The dataset's name and its records, read as they are taken."""
    if spec.startswith("synthetic:"):
        return spec, iter(generate(parse_synthetic_spec(spec)))
    if spec.startswith("hf:"):
        return load_hub_records(spec, group_columns, rules)
    path = Path(spec).expanduser()
    return str(path), _file_records(path, group_columns, rules)


def parse_synthetic_spec(spec: str) -> SyntheticSpec:
    kind, _, query = spec.removeprefix("synthetic:").partition("?")
    names = {
        "rows": int,
        "seed": int,
        "strength": float,
        "fraction": float,
        "options": int,
        "wrong_keys": float,
    }
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
    if kind not in SYNTHETIC_KINDS:
        raise InputError(
            f"{spec}: unknown synthetic dataset {kind!r}; choose one of"
            f" {', '.join('synthetic:' + k for k in SYNTHETIC_KINDS)}"
        )
    return SyntheticSpec(kind=kind, **kwargs)


def _file_records(path: Path, group_columns: Sequence[str], rules: RowRules) -> Iterator[QARecord]:
    if not path.exists():
        raise InputError(f"{path}: dataset file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a dataset file ({', '.join(SUFFIXES)})")
    for row_number, row in read_rows(path):
        yield row_to_record(row, row_number, str(path), group_columns, rules)
