"""The benchmarks TsT was published on, mapped from their Hugging Face schema to blind QA rows.

Each mapper turns one row as the hub stores it into a generic row (`id`, `question`, `options`,
`answer`, `format`, group columns, scalar metadata) that `rows.row_to_record` validates. Images
and videos are never read: a blind model has no use for them, and the parquet readers skip
those columns.

    cvbench   nyu-visionx/CV-Bench   idx, type (2D/3D), task, question, choices, answer "(A)"
    vsibench  nyu-visionx/VSI-Bench  id, dataset, scene_name, question_type, question, options
                                     ("A. chair", absent for numeric questions), ground_truth
    mmmu      MMMU/MMMU              id "validation_<Subject>_<n>", question, options (a Python
                                     list literal), answer, question_type (multiple-choice/open),
                                     subfield, topic_difficulty, img_type; one config per subject
    videomme  lmms-lab/Video-MME     question_id, question, options ("A. ..."), answer, task_type,
                                     domain, sub_category, duration, video_id
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..schemas import parse_number
from .rows import RowError

RowMapper = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class HubBenchmark:
    """A published benchmark's hub repository, its split, the text columns read and the row mapper."""

    name: str
    repo: str
    split: str
    config: str | None
    columns: tuple[str, ...]
    group_columns: tuple[str, ...]
    to_row: RowMapper


def _required(row: Mapping[str, Any], key: str) -> Any:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowError(key, "missing or empty")
    return value


def _string_list(value: Any, key: str) -> list[str]:
    """A list of option texts from a list, an array, a JSON list or a Python list literal."""
    if value is None:
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            value = ast.literal_eval(text)  # literals only: never evaluates code
        except (ValueError, SyntaxError):
            raise RowError(key, f"expected a list of options, got {text[:60]!r}") from None
    if not isinstance(value, list | tuple) or not all(isinstance(item, str | int | float) for item in value):
        raise RowError(key, "expected a list of option texts")
    return [str(item) for item in value]


def _scalars(row: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        key: row[key]
        for key in keys
        if isinstance(row.get(key), str | int | float | bool) and row.get(key) != ""
    }


def cvbench_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """CV-Bench: choices hold the option texts, answer is "(A)"-style."""
    record_id = row.get("idx", row.get("id"))
    if record_id is None:
        raise RowError("idx", "missing")
    return {
        **_scalars(row, ("type", "task", "source", "source_dataset", "filename")),
        "id": str(record_id),
        "question": _required(row, "question"),
        "options": _string_list(_required(row, "choices"), "choices"),
        "answer": str(_required(row, "answer")).strip(),
        "format": "mc",
    }


def vsibench_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """VSI-Bench: options are "A. text" for multiple choice and absent for numeric answers (MRA)."""
    options = _string_list(row.get("options"), "options")
    return {
        **_scalars(row, ("dataset", "scene_name", "question_type")),
        "id": str(_required(row, "id")),
        "question": _required(row, "question"),
        "options": options,
        "answer": str(_required(row, "ground_truth")).strip(),
        "format": "mc" if options else "num",
    }


def mmmu_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """MMMU: options are a list literal; open questions are numeric (MRA) or open-ended."""
    record_id = str(_required(row, "id"))
    answer = str(_required(row, "answer")).strip()
    if answer == "?":
        raise RowError("answer", "hidden ('?'): MMMU's test answers are not public; use split=validation")
    question_type = str(row.get("question_type") or "")
    options = _string_list(row.get("options"), "options")
    accepted = None
    if question_type == "multiple-choice":
        answer_format = "mc"
    else:
        options = []
        if answer.startswith("["):
            accepted = _string_list(answer, "answer")
            if not accepted:
                raise RowError("answer", "an empty list of accepted answers")
            answer = accepted[0]
        answer_format = "num" if parse_number(answer) is not None else "oe"
    parts = record_id.split("_")
    subject = "_".join(parts[1:-1]) if len(parts) >= 3 else ""
    row_out = {
        **_scalars(row, ("subfield", "topic_difficulty", "question_type", "img_type")),
        "id": record_id,
        "question": _required(row, "question"),
        "options": options,
        "answer": answer,
        "format": answer_format,
    }
    if subject:
        row_out["subject"] = subject
    if accepted is not None:
        row_out["accepted_answers"] = json.dumps(accepted)
    return row_out


def videomme_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Video-MME: options "A. text", answer a letter; grouped by task, domain and duration."""
    return {
        **_scalars(row, ("task_type", "domain", "sub_category", "duration", "video_id", "videoID")),
        "id": str(_required(row, "question_id")),
        "question": _required(row, "question"),
        "options": _string_list(_required(row, "options"), "options"),
        "answer": str(_required(row, "answer")).strip(),
        "format": "mc",
    }


BENCHMARKS: dict[str, HubBenchmark] = {
    "cvbench": HubBenchmark(
        name="cvbench",
        repo="nyu-visionx/CV-Bench",
        split="test",
        config=None,
        columns=("idx", "id", "type", "task", "question", "choices", "answer", "source", "source_dataset",
                 "filename"),
        group_columns=("task", "type", "source"),
        to_row=cvbench_row,
    ),
    "vsibench": HubBenchmark(
        name="vsibench",
        repo="nyu-visionx/VSI-Bench",
        split="test",
        config=None,
        columns=("id", "dataset", "scene_name", "question_type", "question", "options", "ground_truth"),
        group_columns=("question_type", "dataset"),
        to_row=vsibench_row,
    ),
    "mmmu": HubBenchmark(
        name="mmmu",
        repo="MMMU/MMMU",
        split="validation",
        config=None,
        columns=("id", "question", "options", "answer", "question_type", "subfield", "topic_difficulty",
                 "img_type"),
        group_columns=("subject", "question_type", "subfield", "topic_difficulty"),
        to_row=mmmu_row,
    ),
    "videomme": HubBenchmark(
        name="videomme",
        repo="lmms-lab/Video-MME",
        split="test",
        config="videomme",
        columns=("question_id", "question", "options", "answer", "task_type", "domain", "sub_category",
                 "duration", "video_id", "videoID"),
        group_columns=("task_type", "domain", "duration"),
        to_row=videomme_row,
    ),
}  # fmt: skip


def benchmark_for(repo: str, declared: str | None) -> HubBenchmark | None:
    """The mapper a spec names (`format=`), else the one registered for the repository."""
    if declared is not None:
        return BENCHMARKS[declared]
    return next((b for b in BENCHMARKS.values() if b.repo.lower() == repo.lower()), None)
