"""A seeded synthetic video-QA benchmark with a planted, non-visual shortcut.

Every question names the scene a clip was recorded in. Four "cue" scenes are tied to an answer:
in the `shortcut` variant a question with a cue scene has the cue's answer with probability
`strength` (letter for multiple choice, a count for the numeric variant); all other answers are
uniform, so the answer distribution stays balanced and only the cue is exploitable. The
`control` variant keeps the same cues with answers independent of them. Each row records in
`metadata` whether its cue is present and whether the shortcut gives its answer. `wrong_keys`
plants answer-key errors: that share of multiple-choice rows gets another letter as its key
(`metadata["wrong_key"]`), which answer-key checks (tst_bench/label_issues.py) should find.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from ..errors import InputError
from ..schemas import QARecord, option_letters

SyntheticKind = Literal["shortcut", "control", "numeric"]
SYNTHETIC_KINDS: tuple[SyntheticKind, ...] = ("shortcut", "control", "numeric")

CUE_SCENES = ("in the kitchen", "at the beach", "in the garage", "at the park")
CUE_COUNTS = (3, 12, 7, 20)
NEUTRAL_SCENES = (
    "in the hallway",
    "on the street",
    "in the office",
    "at the station",
    "at the market",
    "in the classroom",
)
OBJECTS = (
    "cup", "chair", "lamp", "book", "bag", "ball", "box", "bottle", "hat", "phone",
    "bicycle", "dog", "cat", "car", "table", "window", "door", "plant", "clock", "shoe",
)  # fmt: skip
PLURALS = {"box": "boxes", "glass": "glasses"}
RELATIONS = ("next to", "behind", "in front of", "under", "on top of", "left of", "right of")
ATTRIBUTES = {
    "color": ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "brown"),
    "material": ("wood", "metal", "plastic", "glass", "paper", "cloth", "stone", "leather"),
    "shape": ("round", "square", "oval", "flat", "long", "short", "tall", "thin"),
}
MC_TEMPLATES = (
    "In the video recorded {scene}, what is the {attribute} of the {obj} {relation} the {other}?",
    "Which {attribute} does the {obj} {relation} the {other} have in the clip filmed {scene}?",
    "What {attribute} is the {obj} that appears {relation} the {other}, in the footage shot {scene}?",
)
COUNT_TEMPLATES = (
    "How many {objs} appear in the video recorded {scene}?",
    "How many {objs} can be counted in the clip filmed {scene}?",
    "What is the number of {objs} seen in the footage shot {scene}?",
)
MAX_COUNT = 30


@dataclass(frozen=True)
class SyntheticSpec:
    kind: SyntheticKind = "shortcut"
    rows: int = 600
    seed: int = 0
    shortcut_fraction: float = 0.4
    strength: float = 0.9
    n_options: int = 4
    #: share of multiple-choice rows whose key is replaced by another letter
    wrong_keys: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SYNTHETIC_KINDS:
            raise InputError(f"unknown synthetic kind {self.kind!r}; choose one of {SYNTHETIC_KINDS}")
        if self.rows < 1:
            raise InputError(f"synthetic rows must be positive, got {self.rows}")
        if not all(0.0 <= value <= 1.0 for value in (self.shortcut_fraction, self.strength, self.wrong_keys)):
            raise InputError("shortcut_fraction, strength and wrong_keys must lie in [0, 1]")
        if not 2 <= self.n_options <= 8:
            raise InputError(f"n_options must lie in [2, 8], got {self.n_options}")

    @property
    def name(self) -> str:
        return f"synthetic:{self.kind}"

    def expected_ceiling(self) -> float | None:
        """Best expected accuracy from the text alone (multiple-choice kinds only)."""
        if self.kind == "numeric":
            return None
        chance = 1.0 / self.n_options
        if self.kind == "control":
            return chance
        best_on_cue = max(self.strength, (1.0 - self.strength) / (self.n_options - 1), chance)
        return self.shortcut_fraction * best_on_cue + (1.0 - self.shortcut_fraction) * chance


def generate(spec: SyntheticSpec) -> list[QARecord]:
    rng = random.Random(f"tst-bench-synthetic/{spec.kind}/{spec.seed}")
    make = _numeric_row if spec.kind == "numeric" else _choice_row
    return [make(spec, rng, index) for index in range(spec.rows)]


def _scene(spec: SyntheticSpec, rng: random.Random) -> tuple[str, int | None]:
    if rng.random() < spec.shortcut_fraction:
        cue = rng.randrange(len(CUE_SCENES))
        return CUE_SCENES[cue], cue
    return rng.choice(NEUTRAL_SCENES), None


def _choice_row(spec: SyntheticSpec, rng: random.Random, index: int) -> QARecord:
    letters = option_letters(spec.n_options)
    scene, cue = _scene(spec, rng)
    attribute = rng.choice(sorted(ATTRIBUTES))
    obj, other = rng.sample(OBJECTS, 2)
    template = rng.choice(MC_TEMPLATES)
    question = template.format(
        scene=scene, attribute=attribute, obj=obj, relation=rng.choice(RELATIONS), other=other
    )
    options = rng.sample(ATTRIBUTES[attribute], spec.n_options)
    cue_letter = letters[cue % spec.n_options] if cue is not None else None
    follows_cue = spec.kind == "shortcut" and cue_letter is not None and rng.random() < spec.strength
    if follows_cue and cue_letter is not None:
        answer = cue_letter
    elif spec.kind == "shortcut" and cue_letter is not None:
        answer = rng.choice([letter for letter in letters if letter != cue_letter])
    else:
        answer = rng.choice(letters)
    metadata = {"has_cue": cue is not None, "shortcut": bool(follows_cue), "scene": scene}
    if spec.wrong_keys > 0:  # drawn only then, so sets without planted errors stay as they were
        wrong = rng.random() < spec.wrong_keys
        if wrong:
            answer = rng.choice([letter for letter in letters if letter != answer])
        metadata["wrong_key"] = wrong
    return QARecord(
        id=f"{spec.kind}-{spec.seed}-{index:05d}",
        question=question,
        options=options,
        answer=answer,
        format="mc",
        groups={"question_type": attribute},
        metadata=metadata,
    )


def _numeric_row(spec: SyntheticSpec, rng: random.Random, index: int) -> QARecord:
    scene, cue = _scene(spec, rng)
    obj = rng.choice(OBJECTS)
    question = rng.choice(COUNT_TEMPLATES).format(objs=PLURALS.get(obj, f"{obj}s"), scene=scene)
    follows_cue = cue is not None and rng.random() < spec.strength
    count = CUE_COUNTS[cue] if follows_cue and cue is not None else rng.randint(1, MAX_COUNT)
    return QARecord(
        id=f"{spec.kind}-{spec.seed}-{index:05d}",
        question=question,
        answer=str(count),
        format="num",
        groups={"question_type": "object_count"},
        metadata={"has_cue": cue is not None, "shortcut": follows_cue, "scene": scene},
    )
