"""Which rows leave in a round: the highest s(x) (IBP) or a seeded random draw (the control).

With `balance`, a round's removals are spread over answer classes in proportion to their sizes
(each removal goes to the class least pruned so far, relative to its size) and no class drops
below `min_class_rows`, so pruning neither empties a class nor plants an answer prior of its own.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

from ..folds import derive_seed
from ..schemas import QARecord


def answer_class(record: QARecord) -> str:
    """The stratum the fold plan uses: the letter for multiple choice, the format otherwise."""
    return record.answer if record.format == "mc" else f"<{record.format}>"


def class_quotas(sizes: Mapping[str, int], count: int, min_class_rows: int) -> dict[str, int]:
    """Spread `count` removals over classes proportionally, keeping `min_class_rows` in each."""
    quotas = dict.fromkeys(sizes, 0)
    for _ in range(count):
        open_classes = [name for name, size in sizes.items() if size - quotas[name] > min_class_rows]
        if not open_classes:
            break
        chosen = max(
            open_classes, key=lambda name: ((sizes[name] - quotas[name]) / sizes[name], sizes[name], name)
        )
        quotas[chosen] += 1
    return quotas


def removable_count(
    records: Sequence[QARecord], count: int, balance: bool, min_class_rows: int, min_rows: int
) -> int:
    """How many of `count` removals the floors allow."""
    count = min(count, max(0, len(records) - min_rows))
    if balance:
        sizes = _class_sizes(records)
        count = min(count, sum(max(0, size - min_class_rows) for size in sizes.values()))
    return max(0, count)


def select_highest_bias(
    records: Sequence[QARecord],
    bias: Mapping[str, float],
    count: int,
    balance: bool,
    min_class_rows: int,
    seed: int,
) -> list[str]:
    """The `count` rows with the highest s(x); ties broken by a seeded hash of the id."""

    def rank(record: QARecord) -> tuple[float, int]:
        return (-bias.get(record.id, 0.0), derive_seed(seed, "ibp-tie", record.id))

    return _select(records, count, balance, min_class_rows, lambda pool, k: sorted(pool, key=rank)[:k])


def select_random(
    records: Sequence[QARecord], count: int, balance: bool, min_class_rows: int, seed: int, round_index: int
) -> list[str]:
    """`count` rows drawn uniformly (within classes when balanced), fixed by seed and round."""
    rng = random.Random(derive_seed(seed, "random-prune", round_index))
    return _select(records, count, balance, min_class_rows, lambda pool, k: rng.sample(list(pool), k))


def _select(records, count, balance, min_class_rows, pick) -> list[str]:
    if count <= 0:
        return []
    if not balance:
        return [record.id for record in pick(records, min(count, len(records)))]
    by_class: dict[str, list[QARecord]] = defaultdict(list)
    for record in records:
        by_class[answer_class(record)].append(record)
    quotas = class_quotas({name: len(rows) for name, rows in sorted(by_class.items())}, count, min_class_rows)
    chosen = []
    for name in sorted(by_class):
        chosen.extend(record.id for record in pick(by_class[name], quotas[name]))
    return chosen


def _class_sizes(records: Sequence[QARecord]) -> dict[str, int]:
    sizes: dict[str, int] = defaultdict(int)
    for record in records:
        sizes[answer_class(record)] += 1
    return dict(sorted(sizes.items()))
