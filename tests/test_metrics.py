import math

import pytest

from tst_bench.metrics import (
    auroc,
    mean_relative_accuracy,
    mean_std_ci95,
    normalize_text,
    parse_mc_letter,
    parse_numeric_answer,
    score_answer,
)

LETTERS = ["A", "B", "C", "D"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        (" (B) ", "B"),
        ("B.", "B"),
        ("B) Paris", "B"),
        ("The answer is B", "B"),
        ("answer: c", "C"),
        ("I think the correct option is (D).", "D"),
        ("Paris", "B"),
        ("E", None),
        ("", None),
        ("A or B", None),
    ],
)
def test_parse_mc_letter(text, expected):
    assert parse_mc_letter(text, LETTERS, ["Berlin", "Paris", "Rome", "Madrid"]) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12", 12.0), ("about 3.5 meters", 3.5), ("1,200", 1200.0), ("three", 3.0), ("none", None)],
)
def test_parse_numeric_answer(text, expected):
    assert parse_numeric_answer(text) == expected


def test_mean_relative_accuracy_thresholds():
    assert mean_relative_accuracy(10, 10) == 1.0
    assert mean_relative_accuracy(None, 10) == 0.0
    # relative error 0.2 is below 1 - t for t in 0.50..0.75 (6 of 10 thresholds)
    assert mean_relative_accuracy(12, 10) == pytest.approx(0.6)
    assert mean_relative_accuracy(30, 10) == 0.0
    assert mean_relative_accuracy(0, 0) == 1.0


def test_score_answer_by_format():
    assert score_answer("mc", "B", "B") == 1.0
    assert score_answer("mc", "B", "C") == 0.0
    assert score_answer("num", "10", "10") == 1.0
    assert score_answer("oe", "The Eiffel Tower", "eiffel tower!") == 1.0
    assert normalize_text("  An  apple. ") == "apple"


def test_mean_std_ci95_matches_t_interval():
    mean, std, (low, high) = mean_std_ci95([0.4, 0.5, 0.6])
    assert mean == pytest.approx(0.5)
    assert std == pytest.approx(0.1)
    half = 4.303 * 0.1 / math.sqrt(3)
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half))
    assert mean_std_ci95([0.3]) == (0.3, 0.0, (0.3, 0.3))


def test_auroc_ranks_and_ties():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    with pytest.raises(ValueError):
        auroc([0.1], [True])
