"""The content of sweep.json: every configuration's run, the best one (optimistic) and the nested
cross-validation score (honest), side by side."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..schemas import Baselines, ScoreInterval, Verdict

BEST_NOTE = (
    "the highest score of the grid, chosen on the folds that score it: optimistic (the maximum of"
    " several noisy scores overstates the non-visual signal); the nested score is the honest one"
)
NESTED_NOTE = (
    "per outer fold, the configuration with the best inner k-fold score on that fold's training rows"
    " only, scored on the held-out fold"
)


class ConfigurationResult(BaseModel):
    """One configuration: an ordinary run directory (relative to the sweep's) and its TsT score."""

    name: str
    #: the configuration's options as the grid names them
    options: dict[str, Any]
    trainer_options: dict[str, Any]
    predictor_options: dict[str, Any]
    run_dir: str
    score: float
    ci95: tuple[float, float]
    #: wall seconds of the run, summed over its invocations
    seconds: float


class BestConfiguration(BaseModel):
    name: str
    options: dict[str, Any]
    run_dir: str
    score: float
    ci95: tuple[float, float]
    optimistic: Literal[True] = True
    note: str = BEST_NOTE


class OuterFold(BaseModel):
    """One outer fold of the nested cross-validation: the inner scores and the choice they made."""

    repeat: int
    fold: int
    #: the configuration chosen by the inner k-fold on this fold's training rows
    chosen: str
    #: each configuration's inner score (empty when the grid has one configuration)
    inner_scores: dict[str, float]
    #: the chosen configuration's score on this held-out fold
    score: float
    n_test: int
    #: the inner runs' folder, relative to the sweep's (None without inner runs)
    inner_dir: str | None


class NestedResult(BaseModel):
    score: float
    ci95: tuple[float, float]
    interval: ScoreInterval | None
    baselines: Baselines
    verdict: Verdict
    inner_folds: int
    outer: list[OuterFold]
    #: result.json + samples.jsonl of the nested predictions (a run directory for report/compare)
    run_dir: str
    #: wall seconds of the inner runs, summed over their invocations
    seconds: float
    note: str = NESTED_NOTE


class SweepResult(BaseModel):
    """The content of sweep.json."""

    dataset: str
    model: str
    backend: str
    trainer: str
    metric: str
    n_samples: int
    n_folds: int
    n_repeats: int
    seed: int
    #: the grid as given: key -> values (listed configurations aside)
    grid: dict[str, list[Any]]
    configs: list[ConfigurationResult]
    best: BestConfiguration
    nested: NestedResult | None
    #: best minus nested, in points (score x 100): what choosing on the scoring folds adds
    gap_points: float | None
    #: the sweep's verdict: the nested score's (None when nested cross-validation was skipped)
    verdict: Verdict | None
    baselines: Baselines
    #: the run options every configuration shares
    config: dict[str, Any] = Field(default_factory=dict)
    #: wall seconds of the invocation that wrote this file (each run's `seconds` sums its own)
    wall_s: float
