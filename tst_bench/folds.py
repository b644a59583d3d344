"""The fold plan: which records each fold trains on and holds out, fixed by the seed."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError
from .schemas import QARecord
from .store import fold_key


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (unlike hash(), the same in every process)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class FoldSpec:
    repeat: int
    fold: int
    n_folds: int
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        return fold_key(self.repeat, self.fold)

    def seed(self, base_seed: int) -> int:
        return derive_seed(base_seed, "fold", self.repeat, self.fold)


def make_fold_plan(records: Sequence[QARecord], n_folds: int, seed: int, repeats: int = 1) -> list[FoldSpec]:
    """k folds per repeat; multiple-choice records are stratified by answer letter.

    Each stratum is shuffled and dealt round-robin, continuing where the previous stratum
    stopped, so folds differ in size by at most one and every letter is spread evenly.
    """
    if n_folds < 2:
        raise InputError(f"--folds must be at least 2, got {n_folds}")
    if repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {repeats}")
    if len(records) < n_folds:
        raise InputError(
            f"too few rows for {n_folds} folds: the dataset has {len(records)} row(s); use at"
            f" least {n_folds} rows or fewer folds"
        )
    plan = []
    for repeat in range(repeats):
        rng = random.Random(derive_seed(seed, "plan", repeat))
        strata: dict[str, list[str]] = defaultdict(list)
        for record in records:
            strata[record.answer if record.format == "mc" else f"<{record.format}>"].append(record.id)
        dealt: list[list[str]] = [[] for _ in range(n_folds)]
        position = 0
        for key in sorted(strata):
            ids = strata[key]
            rng.shuffle(ids)
            for record_id in ids:
                dealt[position % n_folds].append(record_id)
                position += 1
        order = {record.id: index for index, record in enumerate(records)}
        for fold in range(n_folds):
            test = sorted(dealt[fold], key=order.__getitem__)
            held_out = set(test)
            train = tuple(record.id for record in records if record.id not in held_out)
            plan.append(FoldSpec(repeat, fold, n_folds, train, tuple(test)))
    return plan
