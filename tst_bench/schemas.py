"""Typed records that cross process, worker and disk boundaries.

The first four names (TrainingDatum, TestInstance, LLMPredictionResult, LoRAAdapterInfo) keep the
fields the TsT method defines; the rest carry what a TsT run needs on top of it: option
probabilities and the bias score s(x), per-fold results with timings and memory, and the final
TsTResult that `result.json` holds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AnswerFormat = Literal["mc", "num", "oe"]
#: the score a run reports: one per answer format, "mixed" where a dataset has several
MetricName = Literal["accuracy", "mra", "exact_match", "mixed"]
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def option_letters(n_options: int) -> list[str]:
    return list(OPTION_LETTERS[:n_options])


def parse_number(text: str) -> float | None:
    """A finite float from `text`, or None; thousands separators are allowed."""
    try:
        value = float(str(text).strip().replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class QARecord(BaseModel):
    """One benchmark question reduced to what a blind model may see: text, options, answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    question: str
    options: list[str] = Field(default_factory=list)
    answer: str
    format: AnswerFormat
    groups: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("question")
    @classmethod
    def _question_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question is empty")
        return value.strip()

    @field_validator("options")
    @classmethod
    def _options_not_blank(cls, value: list[str]) -> list[str]:
        if any(not option.strip() for option in value):
            raise ValueError("an option is empty")
        if len(value) > len(OPTION_LETTERS):
            raise ValueError(f"at most {len(OPTION_LETTERS)} options are supported")
        return [option.strip() for option in value]

    @model_validator(mode="after")
    def _answer_fits_format(self) -> QARecord:
        if self.format == "mc":
            if len(self.options) < 2:
                raise ValueError("a multiple-choice question needs at least 2 options")
            if self.answer not in self.letters:
                raise ValueError(f"answer {self.answer!r} is not one of the option letters {self.letters}")
        elif self.format == "num" and parse_number(self.answer) is None:
            raise ValueError(f"answer {self.answer!r} is not a number")
        elif self.format == "oe" and not self.answer.strip():
            raise ValueError("answer is empty")
        return self

    @property
    def letters(self) -> list[str]:
        return option_letters(len(self.options))


class TrainingDatum(BaseModel):
    """One fine-tuning example: the blind prompt and the answer the model should give."""

    instruction: str
    response: str
    metadata: dict[str, Any] | None = None


class TestInstance(BaseModel):
    """One held-out question to predict; `choices` are the answer labels for multiple choice.

    The TsT loop leaves `ground_truth` empty: predictors never see the answer, the fold contract
    (evaluator.py) scores their output against it.
    """

    __test__ = False  # not a pytest test class

    instance_id: str
    instruction: str
    ground_truth: str | None = None
    format: AnswerFormat = "mc"
    choices: list[str] | None = None
    metadata: dict[str, Any] | None = None


class LLMPredictionResult(BaseModel):
    """A prediction for one TestInstance.

    For multiple choice, `option_logprobs` are full-vocabulary log-probabilities of each option
    label at the answer position and `option_probs` the same renormalised over the labels.
    `bias_score` is s(x), which predictors leave empty and the fold contract fills in: the
    probability of the true label (for numbers, the relative accuracy of the generated answer;
    for open-ended answers, exact match).
    """

    instance_id: str
    prediction: str
    confidence: float | None = None
    option_probs: dict[str, float] | None = None
    option_logprobs: dict[str, float] | None = None
    bias_score: float | None = None
    raw_output: str | None = None


class LoRAAdapterInfo(BaseModel):
    """A trained LoRA adapter on disk."""

    fold_id: int = -1
    adapter_path: Path
    training_size: int
    model_name: str
    training_config: dict[str, Any] = Field(default_factory=dict)
    size_bytes: int = 0
    train_seconds: float | None = None
    #: Set by feature-model trainers (e.g. TsT-RF): how much each input feature drove the fit.
    feature_importances: dict[str, float] | None = None


class DeviceMemory(BaseModel):
    """Memory of one device at one moment, in MiB; `process_mib` is this process's share."""

    device: str
    used_mib: float
    total_mib: float | None = None
    process_mib: float | None = None
    uuid: str | None = None


#: where memory figures come from: NVML per GPU, or the process's resident set on a CPU
MemorySource = Literal["nvml", "rss"]


class FoldMemory(BaseModel):
    """Memory around one fold: before it, its peak, and after its clean-up."""

    source: MemorySource
    before: list[DeviceMemory]
    peak: list[DeviceMemory]
    after_cleanup: list[DeviceMemory]
    #: the peak sampler's period and how many readings the peak is the maximum of
    interval_s: float | None = None
    samples: int | None = None
    #: the training pass this fold's adapter came out of (the key of its first fold): folds of one
    #: pass start together, so the clean-up check compares passes, not folds inside one
    training_pass: str | None = None


class FoldTimings(BaseModel):
    """Wall seconds of one fold, split by phase; `other` is what the phases do not cover."""

    train_s: float = 0.0
    load_s: float = 0.0
    score_s: float = 0.0
    total_s: float = 0.0
    #: Seconds of engine events inside the phases above (e.g. engine_build, engine_sleep,
    #: engine_wake, engine_teardown), as the predictor reported them.
    events: dict[str, float] = Field(default_factory=dict)
    #: Folds whose adapters came out of one training pass with this fold's; `train_s` (and the
    #: events of that pass) is the pass's time split evenly over them.
    trained_together: int = 1

    @property
    def other_s(self) -> float:
        return max(0.0, self.total_s - self.train_s - self.load_s - self.score_s)


class SamplePrediction(BaseModel):
    """The held-out prediction for one sample in one repeat."""

    id: str
    repeat: int
    fold: int
    target: str
    prediction: str
    correct: bool
    score: float
    bias_score: float | None = None
    option_probs: dict[str, float] | None = None


class FoldSummary(BaseModel):
    """One fold's outcome as result.json lists it: a FoldResult without its samples."""

    repeat: int
    fold: int
    score: float
    majority_score: float
    n_train: int
    n_test: int
    timings: FoldTimings
    adapter_size_bytes: int = 0
    memory: FoldMemory | None = None
    worker: str | None = None


class FoldResult(FoldSummary):
    """Everything one fold produced; persisted as soon as the fold finishes."""

    majority_answer: dict[str, str]
    samples: list[SamplePrediction]
    feature_importances: dict[str, float] | None = None

    def summary(self) -> FoldSummary:
        return FoldSummary(**self.model_dump(include=set(FoldSummary.model_fields)))


class ZeroShotPass(BaseModel):
    """The zero-shot baseline as one pass: the base model's predictions, the pass's wall seconds and
    the engine events inside it (the engine a run builds first is built here: `engine_build`)."""

    predictions: list[LLMPredictionResult]
    seconds: float = 0.0
    events: dict[str, float] = Field(default_factory=dict)


class RunTimings(BaseModel):
    """A run's wall seconds outside its folds (each fold's are in its own timings), summed over
    every invocation that worked on it: a run resumed after an interruption counts them all."""

    invocations: int = 0
    #: everything, checks to summary; result.json's `wall_s`
    wall_s: float = 0.0
    #: input checks, dataset, fold plan
    prepare_s: float = 0.0
    #: the executor up: predictor and trainer built, Ray workers started
    start_s: float = 0.0
    zero_shot_s: float = 0.0
    #: the fold loop, all folds together
    folds_s: float = 0.0
    #: engine events outside the folds (the zero-shot pass): engine_build, engine_sleep, ...
    events: dict[str, float] = Field(default_factory=dict)

    def plus(self, other: RunTimings) -> RunTimings:
        """This invocation's timings added to the earlier ones'."""
        events = dict(self.events)
        for name, seconds in other.events.items():
            events[name] = events.get(name, 0.0) + seconds
        summed = {
            name: getattr(self, name) + getattr(other, name)
            for name in ("invocations", "wall_s", "prepare_s", "start_s", "zero_shot_s", "folds_s")
        }
        return RunTimings(**summed, events=events)


ZeroShotStatus = Literal["scored", "skipped", "not applicable"]


class Baselines(BaseModel):
    zero_shot: float | None
    majority: float
    chance: float
    #: Why `zero_shot` is None: skipped on request, or not applicable (a backend that predicts only
    #: through a trained fold, like TsT-RF). None in results written before it was recorded.
    zero_shot_status: ZeroShotStatus | None = None


class SampleResult(BaseModel):
    """One line of samples.jsonl: a sample's held-out outcome, averaged over repeats."""

    id: str
    fold: int
    target: str
    prediction: str
    correct: bool
    score: float
    bias_score: float | None
    groups: dict[str, str] = Field(default_factory=dict)
    repeats: int = 1


Signal = Literal["signal", "none", "below"]
#: the blind guesser a verdict's floor comes from
FloorName = Literal["majority", "chance"]


class ScoreInterval(BaseModel):
    """The TsT score's 95% interval and what it is made of (tst_bench/interval.py): the samples'
    standard error and the training randomness seen across folds and runs, in quadrature."""

    low: float
    high: float
    #: standard errors of the score from the samples and from training randomness
    sample_se: float
    training_se: float
    #: independently trained replicates pooled (runs x repeats) and the folds they hold
    replicates: int
    folds: int


class Verdict(BaseModel):
    """The one-line answer (tst_bench/verdict.py): is the score's 95% interval above the floor a
    blind guesser reaches (majority or chance, whichever is higher), and by how many points."""

    signal: Signal
    floor_name: FloorName
    floor: float
    #: (score - floor) x 100
    points: float
    score: float
    ci95: tuple[float, float]
    #: runs of the benchmark the verdict pooled
    runs: int = 1
    text: str


class LabelIssue(BaseModel):
    """A sample whose held-out models confidently disagree with its answer key."""

    id: str
    #: the key the dataset gives, and the option the held-out models found most likely
    given: str
    suggested: str
    #: held-out probabilities of both (averaged over repeats)
    given_probability: float
    suggested_probability: float


LabelIssueStatus = Literal["checked", "cleanlab not installed", "not applicable"]


class LabelIssues(BaseModel):
    """Possible wrong answer keys (tst_bench/label_issues.py), most likely first."""

    status: LabelIssueStatus
    #: multiple-choice samples checked
    checked: int = 0
    issues: list[LabelIssue] = Field(default_factory=list)
    #: samples cleanlab flagged, and the confidence from which the held-out models proved reliable
    #: (only flags at or above it are issues; None: never reliable, so no key is questioned)
    cleanlab_flagged: int = 0
    reliable_from: float | None = None
    note: str | None = None


class TsTResult(BaseModel):
    """The content of result.json."""

    metric: MetricName
    score: float
    score_std: float
    ci95: tuple[float, float]
    baselines: Baselines
    by_group: dict[str, dict[str, float]] = Field(default_factory=dict)
    n_samples: int
    n_folds: int
    n_repeats: int
    dataset: str
    model: str
    backend: str
    trainer: str
    seed: int
    #: wall seconds of the run, summed over its invocations (`timings` has the parts)
    wall_s: float
    folds: list[FoldSummary]
    config: dict[str, Any] = Field(default_factory=dict)
    #: Mean over folds of a feature model's importances, largest first (TsT-RF); None for LLMs.
    feature_importances: dict[str, float] | None = None
    #: Run-level seconds outside the folds; None in results written before they were recorded.
    timings: RunTimings | None = None
    #: How `ci95` was made, and the run's verdict; None in results written before they were recorded.
    interval: ScoreInterval | None = None
    verdict: Verdict | None = None
    #: Possible wrong answer keys; None in results written before keys were checked.
    label_issues: LabelIssues | None = None
