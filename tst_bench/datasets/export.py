"""Write QA records as generic JSONL rows that `load_dataset` reads back to the same records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..jsonl import atomic_write
from ..schemas import QARecord


def record_row(record: QARecord) -> dict[str, Any]:
    """Metadata and group columns as top-level keys; the record's own fields always win."""
    return {
        **record.metadata,
        **record.groups,
        "id": record.id,
        "question": record.question,
        "options": record.options,
        "answer": record.answer,
        "format": record.format,
    }


def write_records(path: str | Path, records: Iterable[QARecord]) -> int:
    """Atomically write one generic row per record; returns how many were written."""
    count = 0
    with atomic_write(path) as handle:
        for record in records:
            handle.write(json.dumps(record_row(record), ensure_ascii=False) + "\n")
            count += 1
    return count
