"""Regression rules: a score drop beyond the CI, memory a fold did not release, a speedup drop.

Each rule returns `Finding`s; a finding with `regression=True` makes `tst-bench compare` exit 1.
Memory release is checked on NVML samples; RSS (the CPU fallback) is only checked on request,
because a CPU allocator keeps freed pages and RSS rarely returns to its starting point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from ..schemas import FoldSummary, TsTResult
from .inputs import SpeedupSeries


@dataclass(frozen=True)
class Thresholds:
    #: how far below the baseline's 95% CI lower bound a score may fall before it is a regression
    score_tolerance: float = 0.0
    #: MiB a device may hold after a fold's clean-up above what it held before the fold
    memory_tolerance_mib: float = 256.0
    #: relative speedup drop at the same GPU/worker count that counts as a regression (0.1 = 10%)
    speedup_drop: float = 0.10
    #: also check RSS samples (CPU runs) for memory release
    check_rss: bool = False


DEFAULT_THRESHOLDS = Thresholds()


class Finding(BaseModel):
    kind: Literal["score", "memory", "speedup", "missing", "mismatch"]
    benchmark: str
    run: str
    message: str
    regression: bool


@dataclass(frozen=True)
class Retained:
    """Memory one device still held after one fold's clean-up, compared with before the fold."""

    fold: str
    device: str
    source: str
    before_mib: float
    peak_mib: float | None
    after_mib: float

    @property
    def retained_mib(self) -> float:
        return self.after_mib - self.before_mib


def fold_label(fold: FoldSummary) -> str:
    return f"r{fold.repeat} f{fold.fold}"


def retained_memory(folds: Sequence[FoldSummary]) -> list[Retained]:
    """Per fold and device: memory before the fold and after its clean-up."""
    rows = []
    for fold in folds:
        if fold.memory is None:
            continue
        before = {sample.device: sample.used_mib for sample in fold.memory.before}
        peak = {sample.device: sample.used_mib for sample in fold.memory.peak}
        for sample in fold.memory.after_cleanup:
            if sample.device not in before:
                continue
            rows.append(
                Retained(
                    fold=fold_label(fold),
                    device=sample.device,
                    source=fold.memory.source,
                    before_mib=before[sample.device],
                    peak_mib=peak.get(sample.device),
                    after_mib=sample.used_mib,
                )
            )
    return rows


def is_unreleased(row: Retained, thresholds: Thresholds) -> bool:
    return row.retained_mib > thresholds.memory_tolerance_mib


def check_score(
    name: str, run: str, base: TsTResult, other: TsTResult, thresholds: Thresholds
) -> list[Finding]:
    if base.metric != other.metric:
        message = f"metrics differ ({base.metric} vs {other.metric}): scores not compared"
        return [Finding(kind="mismatch", benchmark=name, run=run, message=message, regression=False)]
    floor = base.ci95[0] - thresholds.score_tolerance
    if other.score >= floor:
        return []
    message = (
        f"{other.metric} dropped {base.score:.3f} -> {other.score:.3f} ({other.score - base.score:+.3f}),"
        f" below the baseline's 95% CI lower bound {base.ci95[0]:.3f}"
        f" (tolerance {thresholds.score_tolerance:.3f})"
    )
    return [Finding(kind="score", benchmark=name, run=run, message=message, regression=True)]


def check_memory(name: str, run: str, result: TsTResult, thresholds: Thresholds) -> list[Finding]:
    rows = [
        row
        for row in retained_memory(result.folds)
        if row.source == "nvml" or (row.source == "rss" and thresholds.check_rss)
    ]
    unreleased = [row for row in rows if is_unreleased(row, thresholds)]
    if not unreleased:
        return []
    worst = max(unreleased, key=lambda row: row.retained_mib)
    folds = len({row.fold for row in unreleased})
    message = (
        f"memory not released after clean-up in {folds} of {len(result.folds)} folds (worst: fold"
        f" {worst.fold} on {worst.device} ({worst.source}): {worst.before_mib:.0f} -> {worst.after_mib:.0f}"
        f" MiB, +{worst.retained_mib:.0f} MiB > tolerance {thresholds.memory_tolerance_mib:.0f} MiB)"
    )
    return [Finding(kind="memory", benchmark=name, run=run, message=message, regression=True)]


def check_speedup(
    name: str, run: str, base: SpeedupSeries, other: SpeedupSeries, thresholds: Thresholds
) -> list[Finding]:
    if base.unit != other.unit:
        message = f"speedup units differ ({base.unit} vs {other.unit}): not compared"
        return [Finding(kind="mismatch", benchmark=name, run=run, message=message, regression=False)]
    findings = []
    for count, base_speedup in zip(base.counts, base.speedup):
        other_speedup = other.at(count)
        if other_speedup is None or other_speedup >= base_speedup * (1 - thresholds.speedup_drop):
            continue
        message = (
            f"speedup at {count} {base.unit} dropped {base_speedup:.2f}x -> {other_speedup:.2f}x"
            f" ({other_speedup / base_speedup - 1:+.0%}, threshold -{thresholds.speedup_drop:.0%})"
        )
        findings.append(Finding(kind="speedup", benchmark=name, run=run, message=message, regression=True))
    return findings
