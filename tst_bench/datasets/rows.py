"""Turn one raw dataset row (sharegpt, alpaca or generic) into a validated QARecord."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from ..errors import InputError, row_error
from ..metrics import parse_mc_letter
from ..schemas import AnswerFormat, QARecord, option_letters, parse_number
from .prompts import split_question_and_options, strip_letter_prefixes

DEFAULT_GROUP_COLUMNS = ("question_type", "category", "task", "task_type", "subject", "domain")
FORMATS: tuple[AnswerFormat, ...] = ("mc", "num", "oe")


class RowError(Exception):
    """A problem with one field of the row being converted; the caller adds file and row."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def row_to_record(
    row: Any,
    row_number: int,
    source: str,
    group_columns: Sequence[str] = DEFAULT_GROUP_COLUMNS,
) -> QARecord:
    """Convert a row, naming the file, row and field in the InputError when it is malformed."""
    try:
        if not isinstance(row, Mapping):
            raise RowError(None, f"expected an object, got {type(row).__name__}")
        if "conversations" in row:
            fields = _sharegpt_fields(row)
        elif "instruction" in row and "output" in row:
            fields = _alpaca_fields(row)
        elif "question" in row:
            fields = _generic_fields(row)
        else:
            raise RowError(
                None,
                "unrecognised row: expected 'conversations' (sharegpt), 'instruction' + 'output'"
                " (alpaca) or 'question' (generic) keys",
            )
        fields["id"] = _row_id(row, row_number)
        fields["groups"] = _groups(row, group_columns)
        fields["metadata"] = _metadata(row, skip=set(group_columns))
        return QARecord(**fields)
    except RowError as error:
        raise row_error(source, row_number, error.field, error.message) from None
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise row_error(source, row_number, field, message) from None


def _sharegpt_fields(row: Mapping) -> dict[str, Any]:
    turns = row["conversations"]
    if not isinstance(turns, list) or not turns:
        raise RowError("conversations", "expected a non-empty list of turns")
    human = [t for t in turns if isinstance(t, Mapping) and t.get("from") in ("human", "user")]
    answer = [t for t in turns if isinstance(t, Mapping) and t.get("from") in ("gpt", "assistant")]
    if not human:
        raise RowError("conversations", "no 'human' turn holding the question")
    if not answer:
        raise RowError("conversations", "no 'gpt' turn holding the answer")
    prompt, response = human[0].get("value"), answer[-1].get("value")
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise RowError("conversations", "turn 'value' must be a string")
    question, options = split_question_and_options(prompt)
    return _question_fields(question, options, response, row.get("format"), "conversations")


def _alpaca_fields(row: Mapping) -> dict[str, Any]:
    instruction, extra, output = row["instruction"], row.get("input") or "", row["output"]
    if not isinstance(instruction, str) or not isinstance(extra, str):
        raise RowError("instruction", "must be a string")
    if not isinstance(output, str | int | float):
        raise RowError("output", "must be a string")
    question, options = split_question_and_options(f"{instruction}\n{extra}".strip())
    return _question_fields(question, options, str(output), row.get("format"), "output")


def _generic_fields(row: Mapping) -> dict[str, Any]:
    question = row["question"]
    if not isinstance(question, str):
        raise RowError("question", "must be a string")
    options = _options_of(row)
    if "gt_idx" in row or "answer_idx" in row:
        key = "gt_idx" if "gt_idx" in row else "answer_idx"
        index = _as_int(row[key], key)
        if not 0 <= index < len(options):
            raise RowError(key, f"index {index} is outside the {len(options)} options")
        answer: Any = option_letters(len(options))[index]
    else:
        key = next((k for k in ("answer", "ground_truth", "gt_answer") if k in row), None)
        if key is None:
            raise RowError("answer", "missing: give 'answer' (or 'gt_idx' with options)")
        answer = row[key]
        if isinstance(answer, bool) or not isinstance(answer, str | int | float):
            raise RowError(key, f"expected text or a number, got {type(answer).__name__}")
    return _question_fields(question, options, str(answer), row.get("format"), "answer")


def _question_fields(
    question: str, options: list[str], answer: str, declared: Any, answer_field: str
) -> dict[str, Any]:
    answer = answer.strip()
    if declared is not None and declared not in FORMATS:
        raise RowError("format", f"unknown format {declared!r}; expected one of {FORMATS}")
    if declared is None:
        declared = "mc" if options else "num" if parse_number(answer) is not None else "oe"
    answer_format: AnswerFormat = declared
    if answer_format == "mc":
        if len(options) < 2:
            raise RowError(
                "options", f"a multiple-choice question needs at least 2 options, found {len(options)}"
            )
        letters = option_letters(len(options))
        letter = parse_mc_letter(answer, letters, options)
        if letter is None:
            raise RowError(answer_field, f"answer {answer!r} names none of the option letters {letters}")
        answer = letter
    elif answer_format == "num" and parse_number(answer) is None:
        raise RowError(answer_field, f"answer {answer!r} is not a number")
    elif not answer:
        raise RowError(answer_field, "answer is empty")
    return {"question": question, "options": options, "answer": answer, "format": answer_format}


def _options_of(row: Mapping) -> list[str]:
    key = next((k for k in ("options", "choices", "candidates") if k in row), None)
    if key is None or row[key] is None or row[key] == "":
        return []
    value = row[key]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RowError(key, "expected a list of options (or a JSON list string)") from None
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        value = value.tolist()
    if not isinstance(value, list) or not all(isinstance(o, str | int | float) for o in value):
        raise RowError(key, "expected a list of option texts")
    return strip_letter_prefixes([str(option).strip() for option in value])


def _as_int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise RowError(field, "expected an integer index")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowError(field, f"expected an integer index, got {value!r}") from None
    if not number.is_integer():
        raise RowError(field, f"expected an integer index, got {value!r}")
    return int(number)


_ID_KEYS = ("id", "question_id", "qid", "uid", "idx")


def _row_id(row: Mapping, row_number: int) -> str:
    for key in _ID_KEYS:
        if row.get(key) not in (None, ""):
            return str(row[key])
    extras = row.get("extras")
    if isinstance(extras, Mapping) and extras.get("idx") is not None:
        return str(extras["idx"])
    return f"row-{row_number}"


def _groups(row: Mapping, group_columns: Sequence[str]) -> dict[str, str]:
    sources = [row]
    if isinstance(row.get("extras"), Mapping):
        sources.append(row["extras"])
    groups = {}
    for column in group_columns:
        for source in sources:
            value = source.get(column)
            if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
                groups[column] = str(value)
                break
    return groups


_STRUCTURAL_KEYS = {
    "conversations", "instruction", "input", "output", "question", "options", "choices",
    "candidates", "answer", "ground_truth", "gt_answer", "gt_idx", "answer_idx", "format", "extras",
}  # fmt: skip


def _metadata(row: Mapping, skip: set[str]) -> dict[str, Any]:
    """Scalar fields we do not interpret (e.g. a synthetic row's `shortcut` flag), kept as-is."""
    sources = [row, row["extras"]] if isinstance(row.get("extras"), Mapping) else [row]
    return {
        key: value
        for source in sources
        for key, value in source.items()
        if key not in _STRUCTURAL_KEYS
        and key not in _ID_KEYS
        and key not in skip
        and isinstance(value, str | int | float | bool | None)
    }


def check_unique_ids(records: Sequence[QARecord], source: str) -> None:
    seen: dict[str, int] = {}
    for row_number, record in enumerate(records, start=1):
        if record.id in seen:
            raise InputError(
                f"{source}: row {row_number}: field 'id': duplicate id {record.id!r}"
                f" (first seen in row {seen[record.id]})"
            )
        seen[record.id] = row_number
