"""The determinism contract: how closely two runs of the same TsT must agree.

* same seed, same torch thread count, same executor: the same bytes (samples.jsonl, folds);
* across thread counts or executors (sequential vs Ray workers): the same predictions and
  per-sample scores, and s(x) within BIAS_TOLERANCE. Float sums in a matmul depend on how
  torch splits them over threads, so option probabilities move by a few 1e-3 (0.0065 measured on
  an Intel Xeon between one and two threads). A prediction may only differ on a near tie: a
  sample whose two most likely options are within BIAS_TOLERANCE of each other in either run.

`agreement(base_dir, other_dir)` checks the second form on two run directories and lists every
sample that breaks it; the Ray benchmarks and tests/test_determinism.py hold runs to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..schemas import SamplePrediction
from ..store import SAMPLES_FILE, RunStore

#: how far s(x) (and any option probability) may move across thread counts or executors
BIAS_TOLERANCE = 0.01


@dataclass
class Agreement:
    """How two runs over the same samples agree; `holds` is the contract across thread counts."""

    samples: int
    max_bias_change: float
    near_ties: int
    violations: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.violations

    def describe(self) -> str:
        verdict = "holds" if self.holds else f"broken for {len(self.violations)} sample(s)"
        detail = "; ".join(self.violations[:5])
        return (
            f"determinism contract {verdict} over {self.samples} samples: max |Δs(x)|"
            f" {self.max_bias_change:.4f} (tolerance {BIAS_TOLERANCE}), {self.near_ties} near tie(s)"
            + (f": {detail}" if detail else "")
        )


def fold_samples(run_dir: Path) -> dict[tuple[str, int], SamplePrediction]:
    """Every held-out prediction of a run directory by (sample id, repeat), from its fold files."""
    run = RunStore(run_dir)
    found: dict[tuple[str, int], SamplePrediction] = {}
    for fold in run.load_saved_folds():
        found.update({(sample.id, sample.repeat): sample for sample in fold.samples})
    if not found:
        raise FileNotFoundError(f"{run_dir}: no fold files with samples under {run.folds_dir}")
    return found


def near_tie(sample: SamplePrediction, tolerance: float = BIAS_TOLERANCE) -> bool:
    probabilities = sorted((sample.option_probs or {}).values(), reverse=True)
    return len(probabilities) >= 2 and probabilities[0] - probabilities[1] <= tolerance


def agreement(base_dir: Path, other_dir: Path, tolerance: float = BIAS_TOLERANCE) -> Agreement:
    """Check the cross-thread-count contract between two finished run directories."""
    base, other = fold_samples(base_dir), fold_samples(other_dir)
    violations = []
    if base.keys() != other.keys():
        violations.append(f"the runs hold different samples ({len(base.keys() ^ other.keys())} differ)")
    max_change, ties = 0.0, 0
    for key in sorted(base.keys() & other.keys()):
        left, right = base[key], other[key]
        tie = near_tie(left, tolerance) or near_tie(right, tolerance)
        ties += tie
        if left.bias_score is not None and right.bias_score is not None:
            change = abs(left.bias_score - right.bias_score)
            max_change = max(max_change, change)
            if change > tolerance:
                violations.append(f"{key[0]}: s(x) {left.bias_score:.4f} vs {right.bias_score:.4f}")
        if (left.prediction, left.score) != (right.prediction, right.score) and not tie:
            violations.append(
                f"{key[0]}: prediction {left.prediction!r} (score {left.score:g}) vs"
                f" {right.prediction!r} (score {right.score:g}) without a near tie"
            )
    return Agreement(len(base), max_change, ties, violations)


def same_bytes(base_dir: Path, other_dir: Path, name: str = SAMPLES_FILE) -> bool:
    """The same-thread-count form of the contract: the per-sample file is byte for byte the same."""
    return (Path(base_dir) / name).read_bytes() == (Path(other_dir) / name).read_bytes()
