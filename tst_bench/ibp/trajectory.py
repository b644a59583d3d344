"""What an IBP (or control) pruning run records: one entry per round, removed rows, the outcome."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Strategy = Literal["ibp", "random"]
StopReason = Literal["budget", "tau", "min_rows", "matched_control"]


class PruneRound(BaseModel):
    """One diagnosis of the current dataset and the removal that followed it."""

    round: int
    n_rows: int
    removed_before: int = Field(description="rows removed in earlier rounds")
    score: float
    score_std: float
    metric: str
    chance: float
    majority: float
    mean_bias: float
    max_bias: float
    flag_rows: int | None = Field(default=None, description="remaining rows carrying the flag")
    flag_auroc: float | None = Field(default=None, description="how well s(x) ranks flagged rows first")
    removed: int = Field(default=0, description="rows removed after this diagnosis")
    precision: float | None = Field(
        default=None, description="share of this round's removed rows that are flagged"
    )
    cumulative_precision: float | None = None
    dataset: str
    run_dir: str


class RemovedRow(BaseModel):
    id: str
    round: int
    bias_score: float
    answer: str
    flag: bool | None = None


class Trajectory(BaseModel):
    strategy: Strategy
    dataset: str
    flag: str | None
    initial_rows: int
    budget: int
    batch_size: int
    tau: float | None
    balance: bool
    stop_reason: StopReason
    removed_total: int
    rounds: list[PruneRound]
    pruned_dataset: str
    removed_file: str
    config: dict[str, Any] = Field(default_factory=dict)

    @property
    def removal_counts(self) -> list[int]:
        return [entry.removed for entry in self.rounds if entry.removed > 0]
