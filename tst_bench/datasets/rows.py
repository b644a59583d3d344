"""Turn one raw dataset row (sharegpt, alpaca or generic) into a validated QARecord.

A row is multiple choice unless it declares otherwise: its options come from a list (`options`,
`choices`, `candidates`; in CSV a JSON list string), from MMLU-style option columns `A`, `B`, ...
`J`, or from the `Options:` / `A. ...` lines of a sharegpt or alpaca prompt. Options missing,
empty or duplicated, and an answer that names no option or several, are input errors naming the
row and field: nothing is guessed. A row without options is numeric or open-ended only when it
says so (`"format": "num"` / `"oe"`) or the command does (`--without-options num|oe`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..errors import InputError, row_error
from ..metrics import mentioned_letters, parse_mc_letter
from ..schemas import AnswerFormat, QARecord, option_letters, parse_number
from .prompts import split_question_and_options, strip_letter_prefixes

logger = logging.getLogger(__name__)

DEFAULT_GROUP_COLUMNS = ("question_type", "category", "task", "task_type", "subject", "domain")
FORMATS: tuple[AnswerFormat, ...] = ("mc", "num", "oe")
#: the formats a row without options may be declared as (row `format`, `--without-options`)
OPEN_FORMATS: tuple[AnswerFormat, ...] = ("num", "oe")
OPTION_LIST_KEYS = ("options", "choices", "candidates")
#: MMLU-style option columns, read in order when a row has no option list
OPTION_COLUMNS = tuple("ABCDEFGHIJ")
#: where a kept duplicate travels from the field builders to the warning that names file and row
DUPLICATE_NOTE = "duplicate_note"
_NO_OPTION_LINES = "the {turn} has no 'Options:' block nor 'A. ...' lines"


@dataclass(frozen=True)
class RowRules:
    """What a command declares about its dataset's rows: the format of rows without options
    (`--without-options num|oe`; None: such a row is an error) and whether rows with repeated
    options are kept (`--allow-duplicate-options`: a warning names each)."""

    without_options: AnswerFormat | None = None
    allow_duplicate_options: bool = False


DEFAULT_RULES = RowRules()


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
    rules: RowRules = DEFAULT_RULES,
) -> QARecord:
    """Convert a row, naming the file, row and field in the InputError when it is malformed;
    `rules` are what the command declares about its rows."""
    try:
        if not isinstance(row, Mapping):
            raise RowError(None, f"expected an object, got {type(row).__name__}")
        if "conversations" in row:
            fields = _sharegpt_fields(row, rules)
        elif "instruction" in row and "output" in row:
            fields = _alpaca_fields(row, rules)
        elif "question" in row:
            fields = _generic_fields(row, rules)
        else:
            raise RowError(
                None,
                "unrecognised row: expected 'conversations' (sharegpt), 'instruction' + 'output'"
                " (alpaca) or 'question' (generic) keys",
            )
        note = fields.pop(DUPLICATE_NOTE, None)
        if note is not None:
            logger.warning("%s: row %d: %s", source, row_number, note)
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


def _sharegpt_fields(row: Mapping, rules: RowRules) -> dict[str, Any]:
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
    declared = _declared_format(row, rules)
    found = Options(options, "conversations", missing=_NO_OPTION_LINES.format(turn="human turn"))
    return _question_fields(question, found, response, declared, "conversations")


def _alpaca_fields(row: Mapping, rules: RowRules) -> dict[str, Any]:
    instruction, extra, output = row["instruction"], row.get("input") or "", row["output"]
    if not isinstance(instruction, str) or not isinstance(extra, str):
        raise RowError("instruction", "must be a string")
    if not isinstance(output, str | int | float):
        raise RowError("output", "must be a string")
    question, options = split_question_and_options(f"{instruction}\n{extra}".strip())
    declared = _declared_format(row, rules)
    found = Options(options, "instruction", missing=_NO_OPTION_LINES.format(turn="instruction"))
    return _question_fields(question, found, str(output), declared, "output")


def _generic_fields(row: Mapping, rules: RowRules) -> dict[str, Any]:
    question = row["question"]
    if not isinstance(question, str):
        raise RowError("question", "must be a string")
    options = _options_of(row)
    declared = _declared_format(row, rules)
    if "gt_idx" in row or "answer_idx" in row:
        key = "gt_idx" if "gt_idx" in row else "answer_idx"
        index = _as_int(row[key], key)
        if not 0 <= index < len(options.texts):
            raise RowError(key, f"index {index} is outside the {len(options.texts)} options")
        letter = option_letters(len(options.texts))[index]
        return _question_fields(question, options, letter, declared, key, by_index=True)
    key = next((k for k in ("answer", "ground_truth", "gt_answer") if k in row), None)
    if key is None:
        raise RowError("answer", "missing: give 'answer' (or 'gt_idx' with options)")
    answer = row[key]
    if isinstance(answer, bool) or not isinstance(answer, str | int | float):
        raise RowError(key, f"expected text or a number, got {type(answer).__name__}")
    return _question_fields(question, options, str(answer), declared, key)


@dataclass(frozen=True)
class Options:
    """A row's option texts, the field they came from (what an error about them names) and, for
    a row without any, where they were looked for."""

    texts: list[str]
    field: str
    missing: str = ""


def _declared_format(row: Mapping, rules: RowRules) -> Declared:
    """What the row declares (its own `format`) and what the command declares for rows without
    options and duplicated options."""
    own = row.get("format")
    if own == "":
        own = None
    if own is not None and own not in FORMATS:
        raise RowError("format", f"unknown format {own!r}; expected one of {FORMATS}")
    if rules.without_options is not None and rules.without_options not in OPEN_FORMATS:
        raise InputError(f"--without-options must be one of {OPEN_FORMATS}, got {rules.without_options!r}")
    return Declared(own, rules.without_options, rules.allow_duplicate_options)


@dataclass(frozen=True)
class Declared:
    own: AnswerFormat | None
    without_options: AnswerFormat | None
    allow_duplicate_options: bool = False

    def format_for(self, options: Options) -> AnswerFormat:
        """The row's own format, else multiple choice when it has options, else the command's."""
        if self.own is not None:
            return self.own
        if options.texts:
            return "mc"
        if self.without_options is not None:
            return self.without_options
        raise RowError(
            options.field,
            f"no options: {options.missing}. A multiple-choice row needs at least 2 options; a"
            ' numeric or open-ended row says so with "format": "num" or "oe" (or the'
            " command with --without-options num|oe)",
        )


def _question_fields(
    question: str,
    options: Options,
    answer: str,
    declared: Declared,
    answer_field: str,
    by_index: bool = False,
) -> dict[str, Any]:
    """The record's fields; `by_index`: the answer is already the letter an index gave."""
    answer = answer.strip()
    answer_format = declared.format_for(options)
    duplicate = None
    if answer_format == "mc":
        if len(options.texts) < 2:
            raise RowError(
                options.field,
                f"a multiple-choice question needs at least 2 options, found {len(options.texts)}",
            )
        duplicate = _duplicate_options(options)
        if duplicate is not None and not declared.allow_duplicate_options:
            raise RowError(options.field, f"{duplicate}; remove the duplicate (or --allow-duplicate-options)")
        if not by_index:
            answer = answer_letter(answer, options.texts, answer_field)
    elif answer_format == "num" and parse_number(answer) is None:
        raise RowError(answer_field, f"answer {answer!r} is not a number")
    elif not answer:
        raise RowError(answer_field, "answer is empty")
    fields = {"question": question, "options": options.texts, "answer": answer, "format": answer_format}
    if duplicate is not None:
        fields[DUPLICATE_NOTE] = f"field '{options.field}': {duplicate}: kept (--allow-duplicate-options)"
    return fields


def text_key(text: str) -> str:
    """How option texts compare: case and runs of white space do not count."""
    return " ".join(text.split()).casefold()


def same_text(left: str, right: str) -> bool:
    return text_key(left) == text_key(right)


def _duplicate_options(options: Options) -> str | None:
    """Two options with the same text, which an answer given as that text could not tell apart."""
    seen: dict[str, int] = {}
    letters = option_letters(len(options.texts))
    for index, text in enumerate(options.texts):
        key = text_key(text)
        if key in seen:
            return f"options {letters[seen[key]]} and {letters[index]} are the same ({text!r})"
        seen[key] = index
    return None


def answer_letter(answer: str, options: Sequence[str], field: str) -> str:
    """The option letter an answer names: a letter ("B", "(B)", "B.", "The answer is B") or one
    option's exact text. An answer that names no option, or several, is a RowError."""
    letters = option_letters(len(options))
    key = " ".join(answer.split()).casefold()
    by_text = [
        letter
        for letter, text in zip(letters, options, strict=True)
        if " ".join(text.split()).casefold() == key
    ]
    by_letter = answer if answer in letters else None
    if by_text and by_letter and by_text != [by_letter]:
        raise RowError(
            field,
            f"answer {answer!r} names several options: letter {by_letter} and the text of option"
            f" {by_text[0]}; give the letter of one option",
        )
    if len(by_text) > 1:
        raise RowError(
            field, f"answer {answer!r} is the text of options {' and '.join(by_text)}; give the letter"
        )
    if by_text:
        return by_text[0]
    letter = parse_mc_letter(answer, letters)
    if letter is not None:
        return letter
    named = sorted(mentioned_letters(answer, letters))
    if len(named) > 1:
        raise RowError(
            field,
            f"answer {answer!r} names several options ({', '.join(named)}); give exactly one",
        )
    raise RowError(
        field,
        f"answer {answer!r} names none of the options: give a letter ({letters[0]}-{letters[-1]}),"
        " one option's exact text, or a 0-based index in 'gt_idx'",
    )


def _options_of(row: Mapping) -> Options:
    """The row's option list, else its option columns A, B, ... (consecutive, non-empty)."""
    key = next((k for k in OPTION_LIST_KEYS if k in row and row[k] not in (None, "")), None)
    if key is None:
        return _option_columns(row)
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
    texts = [str(option).strip() for option in value]
    if any(not text for text in texts):
        raise RowError(key, f"option {option_letters(len(texts))[texts.index('')]} is empty")
    return Options(strip_letter_prefixes(texts), key, missing=f"'{key}' is an empty list")


def _option_columns(row: Mapping) -> Options:
    present = [column for column in OPTION_COLUMNS if _cell(row.get(column))]
    missing = "the row has neither an 'options' list nor option columns (A, B, C, ...)"
    if not present:
        return Options([], "options", missing=missing)
    if tuple(present) != OPTION_COLUMNS[: len(present)]:
        gap = next(column for column in OPTION_COLUMNS if column not in present)
        raise RowError(
            gap,
            f"option column {gap} is empty but {present[-1]} is not: option columns run from A without gaps",
        )
    return Options([_cell(row[column]) for column in present], "A", missing=missing)


def _cell(value: Any) -> str:
    """A cell's text: empty for a missing cell (None, NaN from parquet) or blank text."""
    if value is None or isinstance(value, bool) or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


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
    "conversations", "instruction", "input", "output", "question", *OPTION_LIST_KEYS, *OPTION_COLUMNS,
    "answer", "ground_truth", "gt_answer", "gt_idx", "answer_idx", "format", "extras",
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
