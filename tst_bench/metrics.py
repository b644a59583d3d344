"""Answer parsing, per-sample scores and the statistics reported over folds."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence

from .schemas import AnswerFormat, MetricName, parse_number

_LEADING_LETTER = re.compile(r"^\s*[\(\[]?([A-Z])[\)\]]?(?=$|[\s\.\):,;])")
_KEYWORD_LETTER = re.compile(
    r"(?:answer|option|choice)\s*(?:is|:|=)?\s*[\(\[]?([A-Z])[\)\]]?(?![A-Za-z])", re.IGNORECASE
)
_STANDALONE_LETTER = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen", "twenty")
    )
}  # fmt: skip


def parse_mc_letter(text: str, letters: Sequence[str], options: Sequence[str] = ()) -> str | None:
    """The option letter a free-text answer names ("B", "(B)", "B.", "The answer is B"), or None."""
    stripped = text.strip()
    if stripped in letters:
        return stripped
    standalone = mentioned_letters(stripped, letters)
    leading = _LEADING_LETTER.search(stripped)
    if leading and leading.group(1) in letters:
        delimiter = stripped[leading.end() : leading.end() + 1]
        if delimiter in ("", ".", ")", "]", ":") or len(standalone) == 1:
            return leading.group(1)
    keyword = _KEYWORD_LETTER.search(stripped)
    if keyword and keyword.group(1).upper() in letters:
        return keyword.group(1).upper()
    if len(standalone) == 1:
        return standalone.pop()
    normalized = normalize_text(stripped)
    for letter, option in zip(letters, options, strict=False):  # options may be absent
        if normalized and normalized == normalize_text(option):
            return letter
    return None


def mentioned_letters(text: str, letters: Sequence[str]) -> set[str]:
    """The option letters that stand alone in `text` ("A or C" names A and C)."""
    return {letter for letter in _STANDALONE_LETTER.findall(text) if letter in letters}


def parse_numeric_answer(text: str) -> float | None:
    """The first number in a generated answer (digits or a small number word), or None."""
    match = _NUMBER.search(text)
    if match:
        return parse_number(match.group(0))
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _NUMBER_WORDS:
            return float(_NUMBER_WORDS[word])
    return None


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation, articles and extra spaces (SQuAD-style normalisation)."""
    text = text.lower()
    text = "".join(char for char in text if char not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def mean_relative_accuracy(prediction: float | None, target: float) -> float:
    """MRA (VSI-Bench): share of thresholds 0.50..0.95 where the relative error is below 1 - t."""
    if prediction is None:
        return 0.0
    if target == 0:
        relative_error = 0.0 if prediction == 0 else math.inf
    else:
        relative_error = abs(prediction - target) / abs(target)
    thresholds = [0.5 + 0.05 * step for step in range(10)]
    return sum(relative_error < 1 - threshold for threshold in thresholds) / len(thresholds)


def score_answer(answer_format: AnswerFormat, target: str, prediction: str) -> float:
    """Per-sample score in [0, 1]: exact letter for mc, MRA for num, normalised match for oe."""
    if answer_format == "mc":
        return float(prediction == target)
    if answer_format == "num":
        target_value = parse_number(target)
        assert target_value is not None, "numeric targets are validated on load"
        return mean_relative_accuracy(parse_numeric_answer(prediction), target_value)
    return float(normalize_text(prediction) == normalize_text(target))


def metric_name(formats: set[AnswerFormat]) -> MetricName:
    names: dict[AnswerFormat, MetricName] = {"mc": "accuracy", "num": "mra", "oe": "exact_match"}
    return names[next(iter(formats))] if len(formats) == 1 else "mixed"


# Two-sided 95% Student-t quantiles for 1..30 degrees of freedom; the normal value beyond.
_T975 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


def mean_std_ci95(values: Sequence[float]) -> tuple[float, float, tuple[float, float]]:
    """Mean, sample standard deviation and a t-based 95% confidence interval of the mean."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0, (mean, mean)
    std = math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1))
    quantile = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half_width = quantile * std / math.sqrt(n)
    return mean, std, (mean - half_width, mean + half_width)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance a positive outranks a negative (ties count half)."""
    positives = [score for score, label in zip(scores, labels, strict=True) if label]
    negatives = [score for score, label in zip(scores, labels, strict=True) if not label]
    if not positives or not negatives:
        raise ValueError("AUROC needs at least one positive and one negative label")
    order = sorted(range(len(scores)), key=lambda index: scores[index])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    positive_rank_sum = sum(rank for rank, label in zip(ranks, labels, strict=True) if label)
    n_pos, n_neg = len(positives), len(negatives)
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
