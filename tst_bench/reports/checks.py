"""The checks `tst-bench compare` fails on: a score change in the direction it watches (significant
when paired, beyond the baseline's CI otherwise), memory a fold did not release, a speedup drop.

Which way a score change fails is the user's choice (`fail_on`). A benchmark designer watches for a
*rise*: the same blind model solving more of a new benchmark version from its text alone means the
version got easier without looking, so that fails by default. The harness's own CI watches for a
*drop* (`fail_on="drop"`: the same benchmark scored lower by a changed harness); `"change"` fails
both ways. Each rule returns `Finding`s; a finding with `regression=True` makes compare exit 1.
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

FailOn = Literal["rise", "drop", "change"]
FAIL_ON: tuple[FailOn, ...] = ("rise", "drop", "change")

#: why a score change in each direction matters, as the messages say it
WHY_IT_FAILS = {
    "rise": "the benchmark got easier without looking: more of it is solvable from question and option text",
    "drop": "the harness scores the same benchmark lower than before",
}


@dataclass(frozen=True)
class Thresholds:
    #: which score change fails: a rise (a benchmark designer's gate), a drop (the harness's own
    #: CI) or either
    fail_on: FailOn = "rise"
    #: a score change up to this never fails: beyond the baseline's 95% CI (unpaired runs), or the
    #: mean per-sample difference (paired runs, when significant)
    score_tolerance: float = 0.0
    #: MiB a device may hold after a fold's clean-up above the steady baseline (tst_bench.memory)
    memory_tolerance_mib: float = DEFAULT_TOLERANCE_MIB
    #: one-time warm-up the first fold may keep (CUDA kernels, cuBLAS workspaces)
    memory_warmup_mib: float = DEFAULT_WARMUP_MIB
    #: relative speedup drop at the same GPU/worker count that counts as a regression (0.1 = 10%)
    speedup_drop: float = 0.10
    #: also check RSS samples (CPU runs) for memory release
    check_rss: bool = False

    def fails(self, direction: str) -> bool:
        """Whether a score change in `direction` ("rise" or "drop") is checked."""
        return self.fail_on in (direction, "change")


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
    """Runs over different samples: a score beyond the baseline's 95% CI by more than the tolerance."""
    if base.metric != other.metric:
        message = f"metrics differ ({base.metric} vs {other.metric}): scores not compared"
        return [Finding(kind="mismatch", benchmark=name, run=run, message=message, regression=False)]
    tolerance = thresholds.score_tolerance
    if other.score < base.ci95[0] - tolerance:
        direction, bound = "drop", f"below the baseline's 95% CI lower bound {base.ci95[0]:.3f}"
    elif other.score > base.ci95[1] + tolerance:
        direction, bound = "rise", f"above the baseline's 95% CI upper bound {base.ci95[1]:.3f}"
    else:
        return []
    change = f"{other.metric} {base.score:.3f} -> {other.score:.3f} ({other.score - base.score:+.3f})"
    message = f"{change}, {bound} (tolerance {tolerance:.3f})"
    return [score_finding(name, run, direction, message, thresholds)]


def check_paired_score(
    name: str, run: str, metric: str, paired: PairedComparison, thresholds: Thresholds
) -> list[Finding]:
    """Runs over the same samples: a change fails when it is significant at 95%, larger than the
    tolerance and in a direction `fail_on` checks; any other change is noted."""
    if paired.difference == 0 and paired.base_only_right == paired.other_only_right == 0:
        return []
    direction = "rise" if paired.difference > 0 else "drop"
    change = f"{metric} {paired.base_score:.3f} -> {paired.other_score:.3f}"
    if not paired.significant:
        message = f"{change}, not a significant difference: {paired.describe()}"
        return [Finding(kind="score", benchmark=name, run=run, message=message, regression=False)]
    if abs(paired.difference) <= thresholds.score_tolerance:
        message = f"{change}, a significant {direction} within the tolerance: {paired.describe()}"
        return [Finding(kind="score", benchmark=name, run=run, message=message, regression=False)]
    message = f"{change}, a significant {direction}: {paired.describe()}"
    return [score_finding(name, run, direction, message, thresholds)]


def score_finding(name: str, run: str, direction: str, message: str, thresholds: Thresholds) -> Finding:
    """A score change beyond the rule's bound: it fails when `fail_on` checks its direction, and the
    message says which way it went, why that matters and which setting decided."""
    failed = thresholds.fails(direction)
    verdict = (
        f"fails with --fail-on {thresholds.fail_on}: {WHY_IT_FAILS[direction]}"
        if failed
        else f"not checked with --fail-on {thresholds.fail_on} (--fail-on change checks both ways)"
    )
    return Finding(kind="score", benchmark=name, run=run, message=f"{message}; {verdict}", regression=failed)


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
