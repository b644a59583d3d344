from collections import Counter

import pytest

from tst_bench.datasets.synthetic import SyntheticSpec, generate
from tst_bench.errors import InputError
from tst_bench.folds import derive_seed, make_fold_plan


def test_folds_partition_the_records_and_are_stratified():
    records = generate(SyntheticSpec(rows=203, seed=1))
    plan = make_fold_plan(records, 5, seed=7)
    held_out = [i for spec in plan for i in spec.test_ids]
    assert sorted(held_out) == sorted(r.id for r in records)
    sizes = [len(spec.test_ids) for spec in plan]
    assert max(sizes) - min(sizes) <= 1
    answers = {r.id: r.answer for r in records}
    overall = Counter(answers.values())
    for spec in plan:
        assert set(spec.train_ids).isdisjoint(spec.test_ids)
        assert len(spec.train_ids) + len(spec.test_ids) == len(records)
        fold_counts = Counter(answers[i] for i in spec.test_ids)
        for letter, count in overall.items():
            assert abs(fold_counts[letter] - count / 5) <= 1.5


def test_plan_is_seeded_and_repeats_differ():
    records = generate(SyntheticSpec(rows=60))
    assert make_fold_plan(records, 3, seed=1) == make_fold_plan(records, 3, seed=1)
    assert make_fold_plan(records, 3, seed=1) != make_fold_plan(records, 3, seed=2)
    plan = make_fold_plan(records, 3, seed=1, repeats=2)
    assert [(s.repeat, s.fold) for s in plan] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert plan[0].test_ids != plan[3].test_ids


def test_numeric_records_are_plain_kfold():
    records = generate(SyntheticSpec(kind="numeric", rows=10))
    plan = make_fold_plan(records, 5, seed=0)
    assert [len(s.test_ids) for s in plan] == [2, 2, 2, 2, 2]


def test_too_few_rows_and_bad_k():
    records = generate(SyntheticSpec(rows=3))
    with pytest.raises(InputError, match="too few rows for 5 folds: the dataset has 3 row"):
        make_fold_plan(records, 5, seed=0)
    with pytest.raises(InputError, match="at least 2"):
        make_fold_plan(records, 1, seed=0)


def test_derive_seed_is_stable():
    assert derive_seed(0, "fold", 0, 1) == derive_seed(0, "fold", 0, 1)
    assert derive_seed(0, "fold", 0, 1) != derive_seed(0, "fold", 0, 2)
    assert derive_seed("x") == 762385986  # same value in every process and on every machine
