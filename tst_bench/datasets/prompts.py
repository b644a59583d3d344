"""The blind prompt a model sees for a record, and the answer it is trained to give."""

from __future__ import annotations

import re

from ..schemas import QARecord, TestInstance, TrainingDatum

MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
NUM_INSTRUCTION = "Answer with a single number."
OE_INSTRUCTION = "Answer with a single word or phrase."

_OPTIONS_HEADER = re.compile(r"^\s*(options|choices)\s*:?\s*$", re.IGNORECASE)
_OPTION_LINE = re.compile(r"^\s*[\(\[]?([A-Z])[\)\]]?\s*[\.\):]\s*(.*\S)\s*$")
_MEDIA_PLACEHOLDER = re.compile(r"<(image|video|audio)>\s*", re.IGNORECASE)


def blind_instruction(record: QARecord) -> str:
    """Question and options as text, ending with how to answer (the Video-MME style)."""
    if record.format == "mc":
        lines = [f"{letter}. {option}" for letter, option in zip(record.letters, record.options, strict=True)]
        return f"{record.question}\nOptions:\n" + "\n".join(lines) + f"\n{MC_INSTRUCTION}"
    suffix = NUM_INSTRUCTION if record.format == "num" else OE_INSTRUCTION
    return f"{record.question}\n{suffix}"


def to_training_datum(record: QARecord) -> TrainingDatum:
    return TrainingDatum(
        instruction=blind_instruction(record),
        response=record.answer,
        metadata={"id": record.id},
    )


def to_test_instance(record: QARecord) -> TestInstance:
    """The held-out question as a predictor sees it: prompt and answer labels, not the answer."""
    return TestInstance(
        instance_id=record.id,
        instruction=blind_instruction(record),
        format=record.format,
        choices=record.letters if record.format == "mc" else None,
        metadata={"groups": record.groups} if record.groups else None,
    )


def split_question_and_options(text: str) -> tuple[str, list[str]]:
    """Split a prompt holding "Options:" / "A. ..." lines into the question and option texts.

    Lines after the option block (e.g. "Answer with the option's letter ...") are dropped, as
    are media placeholders such as "<video>": a blind model has no use for them.
    """
    lines = _MEDIA_PLACEHOLDER.sub("", text).strip().splitlines()
    header = next((i for i, line in enumerate(lines) if _OPTIONS_HEADER.match(line)), None)
    start = header + 1 if header is not None else _first_option_line(lines)
    if start is None:
        return "\n".join(lines).strip(), []
    options: list[str] = []
    for line in lines[start:]:
        match = _OPTION_LINE.match(line)
        if not match or match.group(1) != chr(ord("A") + len(options)):
            break
        options.append(match.group(2))
    question_lines = lines[: header if header is not None else start]
    return "\n".join(question_lines).strip(), options


def _first_option_line(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        match = _OPTION_LINE.match(line)
        if index > 0 and match and match.group(1) == "A":
            return index
    return None


def strip_letter_prefixes(options: list[str]) -> list[str]:
    """Drop "A. " style prefixes when every option carries its own letter in order."""
    matches = [_OPTION_LINE.match(option) for option in options]
    if options and all(match and match.group(1) == chr(ord("A") + i) for i, match in enumerate(matches)):
        return [match.group(2) for match in matches if match]
    return options
