"""Generic, leakage-free features of a blind question and its options.

The forest sees what the blind LLM sees: the rendered prompt, parsed back into question and
options. Everything learned from data (word vocabularies, inverse document frequencies, answer
position priors) is fitted on the training folds only and stored as JSON, so the held-out fold
never shapes its own features.

One feature is a target encoding: for each question word, how often training questions holding
it were answered by each letter (smoothed toward the overall letter rates); an option's
`word_position_lift_*` is how much its question's words raise its letter above that rate. It is
what finds answer priors that depend on the question ("kitchen" questions answer A). Training
rows get it out-of-fold (from inner folds without the row), so the forest never learns from a
row's own answer.

Multiple choice is modelled per option: one row per (question, option) with features of the
option in its context (position, length and overlap ranks among the options, words), and the
forest estimates P(this option is the answer). Numeric and open-ended questions get one row per
question with the question's features.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..datasets.prompts import MC_INSTRUCTION, NUM_INSTRUCTION, OE_INSTRUCTION, split_question_and_options
from ..schemas import AnswerFormat, TestInstance, TrainingDatum, option_letters, parse_number

FEATURES_VERSION = 1
_TOKEN = re.compile(r"[a-z0-9]+")
_NEGATION = {"not", "no", "never", "none", "neither", "nor", "cannot", "without"}
_CATCH_ALL = re.compile(r"\b(all|none|both|neither) of (the|these|them)\b|\ball the above\b", re.IGNORECASE)
_SUFFIXES: dict[str, AnswerFormat] = {MC_INSTRUCTION: "mc", NUM_INSTRUCTION: "num", OE_INSTRUCTION: "oe"}

#: Per-option features of a multiple-choice row (before the position one-hot and word features).
OPTION_FEATURES = (
    "position",
    "is_last_option",
    "n_options",
    "position_prior",
    "option_chars",
    "option_words",
    "option_length_rank",
    "option_length_vs_mean",
    "is_longest_option",
    "is_shortest_option",
    "question_overlap",
    "question_overlap_rank",
    "is_max_question_overlap",
    "option_similarity",
    "is_most_similar_option",
    "option_is_number",
    "option_number_rank",
    "is_min_number",
    "is_max_number",
    "option_negation",
    "option_catch_all",
    "question_chars",
    "question_words",
    "word_position_lift_max",
    "word_position_lift_mean",
)
#: Inner folds that encode the training rows' word-position lift without seeing their own answer.
INNER_FOLDS = 5
#: Pseudo-count pulling a word's answer-letter rates toward the overall letter rates.
SMOOTHING = 5.0
#: Features of a numeric or open-ended question (before its word features).
QUESTION_FEATURES = ("question_chars", "question_words", "question_numbers", "question_first_number")


@dataclass(frozen=True)
class BlindQuestion:
    question: str
    options: list[str]
    format: AnswerFormat
    answer: str | None = None

    @property
    def letters(self) -> list[str]:
        return option_letters(len(self.options))


def parse_prompt(
    text: str, answer_format: AnswerFormat | None = None, answer: str | None = None
) -> BlindQuestion:
    """Question, options and format of a blind prompt rendered by `datasets.prompts`.

    The format is the one given, else the one the prompt's closing instruction names, else
    guessed: options make it multiple choice, a numeric answer numeric, anything else open.
    """
    body = text.strip()
    detected: AnswerFormat | None = None
    for suffix, suffix_format in _SUFFIXES.items():
        if body.endswith(suffix):
            body, detected = body[: -len(suffix)].rstrip(), suffix_format
            break
    question, options = split_question_and_options(body)
    resolved = answer_format or detected
    if resolved is None:
        numeric = answer is not None and parse_number(answer) is not None
        resolved = "mc" if options else "num" if numeric else "oe"
    return BlindQuestion(question, options if resolved == "mc" else [], resolved, answer)


def from_training_datum(datum: TrainingDatum) -> BlindQuestion:
    return parse_prompt(datum.instruction, answer=datum.response.strip())


def from_test_instance(instance: TestInstance) -> BlindQuestion:
    return parse_prompt(instance.instruction, instance.format)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


@dataclass
class Vocabulary:
    """TF-IDF over a fixed word list (smoothed idf, l2-normalised rows, as scikit-learn does)."""

    words: list[str] = field(default_factory=list)
    idf: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, documents: Sequence[list[str]], max_size: int, min_df: int) -> Vocabulary:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        frequency = Counter(word for document in documents for word in set(document))
        kept = [
            (word, count)
            for word, count in frequency.items()
            if count >= min_df and word not in ENGLISH_STOP_WORDS and not word.isdigit()
        ]
        kept.sort(key=lambda item: (-item[1], item[0]))
        words = sorted(word for word, _ in kept[:max_size])
        n = len(documents)
        idf = [math.log((1 + n) / (1 + frequency[word])) + 1.0 for word in words]
        return cls(words, idf)

    def transform(self, documents: Sequence[list[str]]) -> np.ndarray:
        matrix = np.zeros((len(documents), len(self.words)), dtype=np.float64)
        index = {word: column for column, word in enumerate(self.words)}
        for row, document in enumerate(documents):
            for word, count in Counter(document).items():
                column = index.get(word)
                if column is not None:
                    matrix[row, column] = count * self.idf[column]
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1.0, norms)


@dataclass
class WordPositionPrior:
    """Per question word, how many training questions holding it were answered by each letter."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def fit(cls, questions: Sequence[BlindQuestion], min_df: int) -> WordPositionPrior:
        counts: dict[str, Counter] = {}
        for q in questions:
            for word in set(tokens(q.question)):
                counts.setdefault(word, Counter())[q.answer] += 1
        return cls(
            {word: dict(letters) for word, letters in counts.items() if sum(letters.values()) >= min_df}
        )

    def lifts(self, q: BlindQuestion, prior: dict[str, float]) -> list[tuple[float, float]]:
        """(max, mean) over the question's known words of P(letter | word) - P(letter), per option."""
        known = [self.counts[word] for word in set(tokens(q.question)) if word in self.counts]
        result = []
        for letter in q.letters:
            base = prior.get(letter, 0.0)
            lifts = [
                (letters.get(letter, 0) + SMOOTHING * base) / (sum(letters.values()) + SMOOTHING) - base
                for letters in known
            ]
            result.append((max(lifts), sum(lifts) / len(lifts)) if lifts else (0.0, 0.0))
        return result


@dataclass
class FeatureSpace:
    """What the features learned from the training folds; `to_dict` / `from_dict` persist it."""

    question_vocab: Vocabulary
    option_vocab: Vocabulary
    position_prior: dict[str, float]
    max_options: int
    word_prior: WordPositionPrior = field(default_factory=WordPositionPrior)
    min_df: int = 2

    @classmethod
    def fit(
        cls, questions: Sequence[BlindQuestion], question_vocab: int, option_vocab: int, min_df: int
    ) -> FeatureSpace:
        choice = [q for q in questions if q.format == "mc"]
        answers = Counter(q.answer for q in choice if q.answer is not None)
        return cls(
            word_prior=WordPositionPrior.fit(choice, min_df),
            min_df=min_df,
            question_vocab=Vocabulary.fit([tokens(q.question) for q in questions], question_vocab, min_df),
            option_vocab=Vocabulary.fit(
                [tokens(option) for q in choice for option in q.options], option_vocab, min_df
            ),
            position_prior={letter: answers[letter] / len(choice) for letter in sorted(answers)}
            if choice
            else {},
            max_options=max((len(q.options) for q in choice), default=0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FEATURES_VERSION,
            "question_vocab": {"words": self.question_vocab.words, "idf": self.question_vocab.idf},
            "option_vocab": {"words": self.option_vocab.words, "idf": self.option_vocab.idf},
            "position_prior": self.position_prior,
            "max_options": self.max_options,
            "word_prior": self.word_prior.counts,
            "min_df": self.min_df,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpace:
        if data.get("version") != FEATURES_VERSION:
            raise ValueError(f"feature space version {data.get('version')!r}, expected {FEATURES_VERSION}")
        return cls(
            question_vocab=Vocabulary(**data["question_vocab"]),
            option_vocab=Vocabulary(**data["option_vocab"]),
            position_prior=data["position_prior"],
            max_options=data["max_options"],
            word_prior=WordPositionPrior(data["word_prior"]),
            min_df=data["min_df"],
        )

    # --- multiple choice: one row per option ---------------------------------------------

    def option_feature_names(self) -> list[str]:
        positions = [f"position:{letter}" for letter in option_letters(self.max_options)]
        return [
            *OPTION_FEATURES,
            *positions,
            *(f"question_word:{word}" for word in self.question_vocab.words),
            *(f"option_word:{word}" for word in self.option_vocab.words),
        ]

    def option_rows(self, questions: Sequence[BlindQuestion], training: bool = False) -> np.ndarray:
        """One row per option of every question, in question order then option order.

        `training` marks the rows the space was fitted on: their word-position lift then comes
        from inner folds that exclude them.
        """
        lifts = self._training_lifts(questions) if training else [self._lifts(q) for q in questions]
        context = np.array(
            [row for q, lift in zip(questions, lifts, strict=True) for row in self._option_context(q, lift)],
            dtype=np.float64,
        )
        n_rows = sum(len(q.options) for q in questions)
        context = context.reshape(n_rows, len(OPTION_FEATURES))
        positions = np.zeros((n_rows, self.max_options))
        row = 0
        for q in questions:
            for index in range(len(q.options)):
                if index < self.max_options:
                    positions[row, index] = 1.0
                row += 1
        question_words = self.question_vocab.transform([tokens(q.question) for q in questions])
        repeats = [len(q.options) for q in questions]
        option_words = self.option_vocab.transform(
            [tokens(option) for q in questions for option in q.options]
        )
        return np.hstack([context, positions, np.repeat(question_words, repeats, axis=0), option_words])

    def option_targets(self, questions: Sequence[BlindQuestion]) -> np.ndarray:
        return np.array(
            [float(letter == q.answer) for q in questions for letter in q.letters], dtype=np.float64
        )

    def _lifts(
        self, q: BlindQuestion, word_prior: WordPositionPrior | None = None
    ) -> list[tuple[float, float]]:
        return (word_prior or self.word_prior).lifts(q, self.position_prior)

    def _training_lifts(self, questions: Sequence[BlindQuestion]) -> list[list[tuple[float, float]]]:
        groups = [index % INNER_FOLDS for index in range(len(questions))]
        lifts: list[list[tuple[float, float]]] = [[] for _ in questions]
        for group in range(min(INNER_FOLDS, len(questions))):
            others = [q for q, g in zip(questions, groups, strict=True) if g != group and q.format == "mc"]
            prior = WordPositionPrior.fit(others, self.min_df)
            for index, q in enumerate(questions):
                if groups[index] == group:
                    lifts[index] = self._lifts(q, prior)
        return lifts

    def _option_context(self, q: BlindQuestion, lifts: list[tuple[float, float]]) -> list[list[float]]:
        """Plain Python on purpose: a question has a handful of options, too few for numpy to pay."""
        question_tokens = tokens(q.question)
        question_set = set(question_tokens)
        option_tokens = [tokens(option) for option in q.options]
        option_sets = [set(words) for words in option_tokens]
        chars = [float(len(option)) for option in q.options]
        mean_chars = max(sum(chars) / len(chars), 1.0)
        overlap = [len(words & question_set) / len(words) if words else 0.0 for words in option_sets]
        similarity = [_mean_similarity(i, option_sets) for i in range(len(option_sets))]
        numbers = [parse_number(option.rstrip(".")) for option in q.options]
        numeric = [value for value in numbers if value is not None]
        length_rank, overlap_rank = _rank(chars), _rank(overlap)
        last = len(q.options) - 1
        rows = []
        for index, value in enumerate(numbers):
            rows.append(
                [
                    index,
                    float(index == last),
                    len(q.options),
                    self.position_prior.get(q.letters[index], 0.0),
                    chars[index],
                    len(option_tokens[index]),
                    length_rank[index],
                    chars[index] / mean_chars,
                    float(chars[index] == max(chars)),
                    float(chars[index] == min(chars)),
                    overlap[index],
                    overlap_rank[index],
                    float(overlap[index] == max(overlap) > 0),
                    similarity[index],
                    float(similarity[index] == max(similarity) > 0),
                    float(value is not None),
                    _value_rank(value, numeric),
                    float(value is not None and len(numeric) > 1 and value == min(numeric)),
                    float(value is not None and len(numeric) > 1 and value == max(numeric)),
                    float(bool(_NEGATION & option_sets[index])),
                    float(bool(_CATCH_ALL.search(q.options[index]))),
                    len(q.question),
                    len(question_tokens),
                    *lifts[index],
                ]
            )
        return rows

    # --- numeric and open-ended: one row per question ------------------------------------

    def question_feature_names(self) -> list[str]:
        return [*QUESTION_FEATURES, *(f"question_word:{word}" for word in self.question_vocab.words)]

    def question_rows(self, questions: Sequence[BlindQuestion]) -> np.ndarray:
        context = []
        for q in questions:
            numbers = [parse_number(match) for match in re.findall(r"-?\d+(?:\.\d+)?", q.question)]
            values = [value for value in numbers if value is not None]
            context.append(
                [len(q.question), len(tokens(q.question)), len(values), values[0] if values else 0.0]
            )
        words = self.question_vocab.transform([tokens(q.question) for q in questions])
        return np.hstack([np.array(context, dtype=np.float64).reshape(len(questions), -1), words])


def _rank(values: list[float]) -> list[float]:
    """Each value's rank among its question's options, scaled to [0, 1] (ties share the mean)."""
    if len(values) < 2:
        return [0.0] * len(values)
    return [_value_rank(value, values) for value in values]


def _value_rank(value: float | None, numeric: list[float]) -> float:
    """Rank of a value among `numeric` in [0, 1], ties sharing the mean; -1 when not a number."""
    if value is None:
        return -1.0
    if len(numeric) < 2:
        return 0.0
    below = sum(other < value for other in numeric)
    equal = sum(other == value for other in numeric) - 1
    return (below + equal / 2) / (len(numeric) - 1)


def _mean_similarity(index: int, option_sets: list[set[str]]) -> float:
    """Mean Jaccard similarity of one option's words with every other option's words."""
    own = option_sets[index]
    others = [words for other, words in enumerate(option_sets) if other != index]
    if not others:
        return 0.0
    return sum(len(own & words) / len(own | words) if own | words else 0.0 for words in others) / len(others)
