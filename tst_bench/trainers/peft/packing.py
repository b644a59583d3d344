"""Which rows every optimizer step of every fold trains on, and how they are laid out for the GPU.

Each fold keeps its own order: a `random.Random(seed)` shuffle per epoch, `batch_size`
rows per optimizer step. A step of several folds carries each fold's rows for that step; the rows
are packed into lines (several short rows per line, no padding between them) and the lines into
micro-batches of at most `micro_batch_tokens` tokens, so memory stays bounded however many folds
train together. Packing and micro-batching change only the summation order of a step's loss, not
which rows it holds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Position-id and segment value of the filler at a line's end (never attended, never labelled).
FILLER_SEGMENT = -1


@dataclass(frozen=True)
class Example:
    """One tokenised training row: the prompt, then the answer tokens the loss is computed on."""

    prompt: list[int]
    response: list[int]

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.response)


@dataclass(frozen=True)
class StepRow:
    """Row `example` of fold `fold`'s training set, in one optimizer step."""

    fold: int
    example: int


@dataclass(frozen=True)
class Step:
    """One optimizer step: `active[j]` says whether fold j steps (folds of unequal size end
    their epoch at different step counts); `label_counts[j]` normalises fold j's loss."""

    rows: list[StepRow]
    active: list[bool]
    label_counts: list[int]


def epoch_orders(size: int, seed: int, epochs: int) -> list[list[int]]:
    """The seeded per-epoch shuffles one fold trains in (one generator across epochs)."""
    shuffler = random.Random(seed)
    orders = []
    for _ in range(epochs):
        order = list(range(size))
        shuffler.shuffle(order)
        orders.append(order)
    return orders


def steps_per_epoch(size: int, batch_size: int) -> int:
    return -(-size // batch_size)


def plan_steps(
    examples: Sequence[Sequence[Example]], seeds: Sequence[int], batch_size: int, epochs: int
) -> list[Step]:
    """Every optimizer step of every fold, folds side by side: step i of an epoch holds rows
    i*batch_size.. of each fold's order for that epoch."""
    orders = [epoch_orders(len(rows), seed, epochs) for rows, seed in zip(examples, seeds, strict=True)]
    counts = [steps_per_epoch(len(rows), batch_size) for rows in examples]
    steps = []
    for epoch in range(epochs):
        for index in range(max(counts)):
            rows: list[StepRow] = []
            labels = [0] * len(examples)
            for fold, order in enumerate(orders):
                for position in order[epoch][index * batch_size : (index + 1) * batch_size]:
                    rows.append(StepRow(fold, position))
                    labels[fold] += len(examples[fold][position].response)
            steps.append(Step(rows, [index < count for count in counts], labels))
    return steps


@dataclass
class MicroBatch:
    """Host arrays for one forward/backward pass; `lines` x `width` tokens.

    Labels are listed fold by fold (`label_counts` per fold), which lets per-fold output layers
    work on contiguous slices. `label_positions` index the flattened [lines * width] tokens at the
    position that predicts each label token.
    """

    input_ids: np.ndarray  # [lines, width] int64
    position_ids: np.ndarray  # [lines, width] int64
    segments: np.ndarray  # [lines, width] int32: row number within the micro-batch, FILLER_SEGMENT for filler
    token_folds: np.ndarray  # [lines * width] int64
    label_positions: np.ndarray  # [labels] int64
    label_targets: np.ndarray  # [labels] int64
    label_weights: np.ndarray  # [labels] float32: 1 / the fold's label count in the step
    label_folds: np.ndarray  # [labels] int64
    label_counts: list[int]  # per fold
    row_lengths: list[int]  # real tokens of each packed row, in line order

    @property
    def lines(self) -> int:
        return self.input_ids.shape[0]

    @property
    def width(self) -> int:
        return self.input_ids.shape[1]

    @property
    def real_tokens(self) -> int:
        return sum(self.row_lengths)


def pack_lines(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit-decreasing: indices of `lengths` grouped into lines of at most `capacity` tokens."""
    lines: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        length = lengths[index]
        for line, free in enumerate(room):
            if length <= free:
                lines[line].append(index)
                room[line] -= length
                break
        else:
            lines.append([index])
            room.append(capacity - length)
    return lines


def micro_batches(
    step: Step,
    examples: Sequence[Sequence[Example]],
    micro_batch_tokens: int,
    pad_id: int,
    one_line: bool = False,
    width_multiple: int = 1,
) -> list[MicroBatch]:
    """The step's rows packed into lines and the lines into micro-batches of bounded size.

    `one_line` puts each micro-batch's rows into a single line (for attention kernels that take
    sequence boundaries instead of a mask); otherwise a line holds at most the longest row's
    length, which keeps the masked attention over a line cheap, and lines are filled up to a
    multiple of `width_multiple` tokens (aligned masks spare GPU attention kernels a copy).
    """
    rows = [examples[row.fold][row.example] for row in step.rows]
    lengths = [example.length for example in rows]
    capacity = max(lengths)
    if one_line:
        groups = _fill_groups(list(range(len(rows))), lengths, micro_batch_tokens)
        return [_build(step, rows, [group], pad_id) for group in groups]
    lines = pack_lines(lengths, capacity)
    fill = [sum(lengths[i] for i in line) for line in lines]
    batches, current, width = [], [], 0
    for line, used in zip(lines, fill, strict=True):
        if current and (len(current) + 1) * max(width, used) > max(micro_batch_tokens, capacity):
            batches.append(_build(step, rows, current, pad_id, width_multiple))
            current, width = [], 0
        current.append(line)
        width = max(width, used)
    if current:
        batches.append(_build(step, rows, current, pad_id, width_multiple))
    return batches


def _fill_groups(order: list[int], lengths: Sequence[int], budget: int) -> list[list[int]]:
    groups: list[list[int]] = [[]]
    used = 0
    for index in order:
        if groups[-1] and used + lengths[index] > budget:
            groups.append([])
            used = 0
        groups[-1].append(index)
        used += lengths[index]
    return groups


def _build(
    step: Step, rows: Sequence[Example], lines: list[list[int]], pad_id: int, width_multiple: int = 1
) -> MicroBatch:
    width = max(sum(rows[i].length for i in line) for line in lines)
    width = -(-width // width_multiple) * width_multiple
    folds = len(step.label_counts)
    input_ids = np.full((len(lines), width), pad_id, dtype=np.int64)
    position_ids = np.zeros((len(lines), width), dtype=np.int64)
    segments = np.full((len(lines), width), FILLER_SEGMENT, dtype=np.int32)
    token_folds = np.zeros((len(lines), width), dtype=np.int64)
    labels: list[list[tuple[int, int]]] = [[] for _ in range(folds)]
    row_lengths = []
    segment = 0
    for line_number, line in enumerate(lines):
        start = 0
        for index in line:
            example, fold = rows[index], step.rows[index].fold
            end = start + example.length
            input_ids[line_number, start:end] = example.prompt + example.response
            position_ids[line_number, start:end] = np.arange(example.length)
            segments[line_number, start:end] = segment
            token_folds[line_number, start:end] = fold
            first = line_number * width + start + len(example.prompt) - 1
            labels[fold].extend((first + offset, token) for offset, token in enumerate(example.response))
            row_lengths.append(example.length)
            segment += 1
            start = end
    flat = [pair for fold_labels in labels for pair in fold_labels]
    label_folds = [fold for fold, fold_labels in enumerate(labels) for _ in fold_labels]
    weights = [1.0 / step.label_counts[fold] for fold in label_folds]
    return MicroBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        segments=segments,
        token_folds=token_folds.reshape(-1),
        label_positions=np.array([position for position, _ in flat], dtype=np.int64),
        label_targets=np.array([token for _, token in flat], dtype=np.int64),
        label_weights=np.array(weights, dtype=np.float32),
        label_folds=np.array(label_folds, dtype=np.int64),
        label_counts=[len(fold_labels) for fold_labels in labels],
        row_lengths=row_lengths,
    )
