"""Regression rules: a score drop (significant when paired, beyond the CI otherwise), memory a fold
did not release, a speedup drop.

Each rule returns `Finding`s; a finding with `regression=True` makes `tst-bench compare` exit 1.
Memory release is the pytest plugin's own check (tst_bench.memory.check_memory), applied to NVML
samples; RSS (the CPU fallback) is only checked on request, because a CPU allocator keeps freed
pages and RSS rarely returns to its starting point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from ..memory import DEFAULT_TOLERANCE_MIB, DEFAULT_WARMUP_MIB, MemoryCheck
from ..memory import check_memory as check_memory_release
from ..schemas import FoldSummary, TsTResult
from ..store import fold_key
from .inputs import SpeedupSeries
from .paired import PairedComparison


@dataclass(frozen=True)
class Thresholds:
    #: a score drop up to this is never a regression: below the baseline's 95% CI lower bound
    #: (unpaired runs), or the mean per-sample difference (paired runs, when significant)
    score_tolerance: float = 0.0
    #: MiB a device may hold after a fold's clean-up above the steady baseline (tst_bench.memory)
    memory_tolerance_mib: float = DEFAULT_TOLERANCE_MIB
    #: one-time warm-up the first fold may keep (CUDA kernels, cuBLAS workspaces)
    memory_warmup_mib: float = DEFAULT_WARMUP_MIB
    #: relative speedup drop at the same GPU/worker count that counts as a regression (0.1 = 10%)
    speedup_drop: float = 0.10
    #: also check RSS samples (CPU runs) for memory release
    check_rss: bool = False


DEFAULT_THRESHOLDS = Thresholds()


class Finding(BaseModel):
    kind: Literal["score", "memory", "speedup", "missing", "mismatch", "unpaired"]
    benchmark: str
    run: str
    message: str
    regression: bool


def fold_label(fold: FoldSummary) -> str:
    return fold_key(fold.repeat, fold.fold)


def memory_check(folds: Sequence[FoldSummary], thresholds: Thresholds) -> MemoryCheck | None:
    """The same clean-up check the pytest plugin runs (tst_bench.memory), on a run's folds."""
    recorded = {fold_label(fold): fold.memory for fold in folds if fold.memory is not None}
    if not recorded:
        return None
    return check_memory_release(
        recorded, thresholds.memory_tolerance_mib, warmup_mib=thresholds.memory_warmup_mib
    )


def is_checked(source: str, thresholds: Thresholds) -> bool:
    return source == "nvml" or thresholds.check_rss


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


def check_paired_score(
    name: str, run: str, metric: str, paired: PairedComparison, thresholds: Thresholds
) -> list[Finding]:
    """Runs over the same samples: a drop is a regression when it is significant at 95% and larger
    than the tolerance; a significant rise or a drop that is not significant is noted."""
    change = f"{metric} {paired.base_score:.3f} -> {paired.other_score:.3f}"
    if paired.difference < 0 and paired.significant and -paired.difference > thresholds.score_tolerance:
        message = f"{change}, a significant drop: {paired.describe()}"
        return [Finding(kind="score", benchmark=name, run=run, message=message, regression=True)]
    if paired.difference == 0 and paired.base_only_right == paired.other_only_right == 0:
        return []
    if paired.significant:
        verdict = "significant rise" if paired.difference > 0 else "significant drop within the tolerance"
    else:
        verdict = "not a significant difference"
    message = f"{change}, {verdict}: {paired.describe()}"
    return [Finding(kind="score", benchmark=name, run=run, message=message, regression=False)]


def check_memory(name: str, run: str, result: TsTResult, thresholds: Thresholds) -> list[Finding]:
    check = memory_check(result.folds, thresholds)
    if check is None or check.ok or not is_checked(check.source, thresholds):
        return []
    failed = [row for row in check.rows if not row.ok]
    worst = max(failed, key=lambda row: row.growth_mib - row.allowed_mib)
    message = (
        f"memory not released after clean-up in {len({row.fold for row in failed})} of"
        f" {len(result.folds)} folds (worst: fold {worst.fold} on {worst.device} ({check.source}):"
        f" {worst.after_mib:.0f} MiB, {worst.growth_mib:+.0f} MiB over its baseline"
        f" {worst.baseline_mib:.0f} MiB > allowed {worst.allowed_mib:.0f} MiB)"
    )
    return [Finding(kind="memory", benchmark=name, run=run, message=message, regression=True)]


def check_speedup(
    name: str, run: str, base: SpeedupSeries, other: SpeedupSeries, thresholds: Thresholds
) -> list[Finding]:
    if base.unit != other.unit:
        message = f"speedup units differ ({base.unit} vs {other.unit}): not compared"
        return [Finding(kind="mismatch", benchmark=name, run=run, message=message, regression=False)]
    findings = []
    for count, base_speedup in zip(base.counts, base.speedup, strict=True):
        other_speedup = other.at(count)
        if other_speedup is None or other_speedup >= base_speedup * (1 - thresholds.speedup_drop):
            continue
        message = (
            f"speedup at {count} {base.unit} dropped {base_speedup:.2f}x -> {other_speedup:.2f}x"
            f" ({other_speedup / base_speedup - 1:+.0%}, threshold -{thresholds.speedup_drop:.0%})"
        )
        findings.append(Finding(kind="speedup", benchmark=name, run=run, message=message, regression=True))
    return findings
