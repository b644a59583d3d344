"""Possible wrong answer keys: samples whose held-out models confidently disagree with the key.

TsT scores every multiple-choice sample with a model that never trained on it, as option
probabilities. Those out-of-fold probabilities are exactly what confident learning takes:
cleanlab's `find_label_issues` (the maintained package, the optional extra `tst-bench[cleanlab]`)
with `filter_by="confident_learning"` flags a sample when the models give another option more
than that option's threshold (the mean probability they give it on the samples keyed with it): the
held-out models confidently disagree with the key.

Confident learning assumes models whose confidence means something; a blind model is mostly
guessing (on real Video-MME rows TsT-RF is near the majority baseline and cleanlab flags 943 of
1,350 keys). So a flag counts only where the held-out models have shown they are reliable: at
least `RELIABLE_FROM_SAMPLES` samples on which they are at least that confident, and whose key their
top option matches in `RELIABLE_ACCURACY` of them. Where no such confidence exists, no key is
questioned and the result says why. Issues come most likely first (ranked by the probability the
models give the key). A blind model can only spot a wrong key where the text gives the answer away,
so a short list does not mean the keys are right. Without cleanlab the result says that the keys
were not checked; nothing is guessed in its place.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .schemas import FoldResult, LabelIssue, LabelIssues, QARecord

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'tst-bench[cleanlab]'"
NOT_INSTALLED = f"cleanlab is not installed: answer keys were not checked ({INSTALL_HINT})"
#: cleanlab's filter: off-diagonal entries of the confident joint (module docstring)
FILTER = "confident_learning"
#: how often the held-out models' top option must match the key among the samples they are at
#: least this confident on, and on how many samples at least, for their disagreement to count
RELIABLE_ACCURACY = 0.9
RELIABLE_FROM_SAMPLES = 20


def held_out_probabilities(folds: Sequence[FoldResult]) -> dict[str, dict[str, float]]:
    """Per sample, the option probabilities of the models that held it out, averaged over repeats."""
    collected: dict[str, list[dict[str, float]]] = defaultdict(list)
    for fold in folds:
        for sample in fold.samples:
            if sample.option_probs:
                collected[sample.id].append(sample.option_probs)
    return {
        sample_id: {letter: float(np.mean([p.get(letter, 0.0) for p in probs])) for letter in probs[0]}
        for sample_id, probs in collected.items()
    }


def find_wrong_keys(records: Sequence[QARecord], folds: Sequence[FoldResult]) -> LabelIssues:
    """The samples cleanlab flags as possibly mislabelled, from the runs' held-out probabilities."""
    probabilities = held_out_probabilities(folds)
    checked = [record for record in records if record.format == "mc" and record.id in probabilities]
    if not checked:
        return LabelIssues(
            status="not applicable",
            note="no multiple-choice samples with held-out option probabilities",
        )
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        logger.warning("%s", NOT_INSTALLED)
        return LabelIssues(status="cleanlab not installed", note=NOT_INSTALLED)
    matrix = probability_matrix(checked, probabilities)
    labels = np.array([record.letters.index(record.answer) for record in checked])
    if len(np.unique(labels)) < 2:
        return LabelIssues(
            status="not applicable",
            note=f"every key is option {checked[0].answer}: confident learning needs keys of two options",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranked = find_label_issues(
            labels,
            matrix,
            filter_by=FILTER,
            return_indices_ranked_by="self_confidence",
            n_jobs=1,
        )
    notes = list(dict.fromkeys(str(warning.message) for warning in caught))
    reliable_from = reliable_confidence(matrix, labels)
    if reliable_from is None:
        notes.insert(
            0,
            f"the held-out models are never reliably confident here: their top option matches the key"
            f" in less than {RELIABLE_ACCURACY:.0%} of any {RELIABLE_FROM_SAMPLES}+ most confident"
            " samples",
        )
    kept = [index for index in ranked if reliable_from is not None and matrix[index].max() >= reliable_from]
    issues = [issue(checked[index], matrix[index]) for index in kept]
    logger.info(
        "answer keys: %d of %d samples flagged by cleanlab, %d where the models are reliable",
        len(ranked),
        len(checked),
        len(issues),
    )
    return LabelIssues(
        status="checked",
        checked=len(checked),
        issues=issues,
        cleanlab_flagged=len(ranked),
        reliable_from=reliable_from,
        note="; ".join(notes) or None,
    )


def reliable_confidence(matrix: np.ndarray, labels: np.ndarray) -> float | None:
    """The lowest top-option probability from which the models' top option matches the key in
    RELIABLE_ACCURACY of the samples at least that confident (RELIABLE_FROM_SAMPLES of them at
    least); None when no such probability exists."""
    top = matrix.max(axis=1)
    order = np.argsort(-top, kind="stable")
    right = (matrix.argmax(axis=1) == labels)[order]
    counts = np.arange(1, len(order) + 1)
    accurate = (np.cumsum(right) / counts >= RELIABLE_ACCURACY) & (counts >= RELIABLE_FROM_SAMPLES)
    if not accurate.any():
        return None
    return float(top[order[np.flatnonzero(accurate).max()]])


def probability_matrix(records: Sequence[QARecord], probabilities: dict[str, dict[str, float]]) -> np.ndarray:
    """One row per record over the letters A.. of the widest question (absent options 0), each row
    summing to 1."""
    width = max(len(record.options) for record in records)
    matrix = np.zeros((len(records), width))
    for row, record in enumerate(records):
        for column, letter in enumerate(record.letters):
            matrix[row, column] = probabilities[record.id].get(letter, 0.0)
        total = matrix[row].sum()
        if total > 0:
            matrix[row] /= total
        else:
            matrix[row, : len(record.letters)] = 1.0 / len(record.letters)
    return matrix


def issue(record: QARecord, probabilities: np.ndarray) -> LabelIssue:
    given = record.letters.index(record.answer)
    suggested = int(np.argmax(probabilities[: len(record.letters)]))
    return LabelIssue(
        id=record.id,
        given=record.answer,
        suggested=record.letters[suggested],
        given_probability=float(probabilities[given]),
        suggested_probability=float(probabilities[suggested]),
    )
