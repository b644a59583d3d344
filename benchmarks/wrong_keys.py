"""How well TsT finds wrong answer keys: precision and recall on synthetic sets with planted errors.

    python benchmarks/wrong_keys.py [--datasets 5] [--rows 1000] [--wrong-keys 0.05] [--strength 1]
                                    [--out FILE]

Each set is the synthetic shortcut generator with a cue in `fraction` of the rows that gives the
answer with probability `strength` (1: the cue fixes it; below 1, some right keys disagree with
their cue, which tests precision) and uniform answers elsewhere; `wrong_keys` of the rows get
another letter as their key (`metadata["wrong_key"]`). TsT-RF runs on it through `run_tst`, and
cleanlab lists the samples whose held-out models confidently disagree with their key
(`result.json`'s `label_issues`). Precision: flagged samples that were planted. Recall: planted
samples flagged, over all of them and over those whose text gives the right answer away (rows
that follow their cue): a blind model cannot tell a wrong key on a row whose answer it cannot read
from the text.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset
from tst_bench.engine import run_tst


@dataclass(frozen=True)
class Detection:
    planted: int
    readable: int
    flagged: int
    found: int
    found_readable: int

    @property
    def precision(self) -> float:
        return self.found / self.flagged if self.flagged else float("nan")

    @property
    def recall(self) -> float:
        return self.found / self.planted if self.planted else float("nan")

    @property
    def readable_recall(self) -> float:
        return self.found_readable / self.readable if self.readable else float("nan")

    def __add__(self, other: Detection) -> Detection:
        return Detection(*(a + b for a, b in zip(self.counts, other.counts, strict=True)))

    @property
    def counts(self) -> tuple[int, ...]:
        return (self.planted, self.readable, self.flagged, self.found, self.found_readable)

    def row(self) -> dict:
        return {
            "planted": self.planted,
            "readable": self.readable,
            "flagged": self.flagged,
            "found": self.found,
            "precision": self.precision,
            "recall": self.recall,
            "readable_recall": self.readable_recall,
        }


@dataclass(frozen=True)
class PlantedSets:
    """The planted sets' shape (module docstring) and the folds TsT-RF runs them with."""

    rows: int
    wrong_keys: float
    fraction: float
    strength: float
    folds: int

    def dataset(self, seed: int) -> str:
        return (
            f"synthetic:shortcut?rows={self.rows}&seed={seed}&strength={self.strength}"
            f"&fraction={self.fraction}&wrong_keys={self.wrong_keys}"
        )


def detect(sets: PlantedSets, seed: int, out: Path) -> Detection:
    """One planted set through TsT-RF and cleanlab, counted against the planted errors."""
    config = RunConfig(
        dataset=sets.dataset(seed), backend="rf", trainer="rf", folds=sets.folds, zero_shot=False, out=out
    )
    records = load_dataset(config.dataset).records
    result = run_tst(config, overwrite=True, progress=False).result
    found = result.label_issues
    if found is None or found.status != "checked":
        raise RuntimeError(f"answer keys were not checked: {found.note if found else 'no check recorded'}")
    planted = {r.id for r in records if r.metadata["wrong_key"]}
    readable = {r.id for r in records if r.metadata["wrong_key"] and r.metadata["shortcut"]}
    flagged = {issue.id for issue in found.issues}
    return Detection(
        len(planted), len(readable), len(flagged), len(flagged & planted), len(flagged & readable)
    )


def study(sets: PlantedSets, datasets: int) -> list[dict]:
    rows_out = []
    total = Detection(0, 0, 0, 0, 0)
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(datasets):
            found = detect(sets, seed, Path(scratch) / f"s{seed}")
            total = total + found
            rows_out.append({"seed": seed, **found.row()})
            print(json.dumps(rows_out[-1]), flush=True)
    rows_out.append({"seed": "all", **total.row()})
    print(json.dumps(rows_out[-1]), flush=True)
    return rows_out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=5, help="planted sets (generator seeds 0..N-1)")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--wrong-keys", type=float, default=0.05, help="share of rows with a wrong key")
    parser.add_argument(
        "--fraction", type=float, default=0.6, help="share of rows whose text gives the answer away"
    )
    parser.add_argument(
        "--strength", type=float, default=1.0, help="how often such a row's cue names its answer"
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    sets = PlantedSets(args.rows, args.wrong_keys, args.fraction, args.strength, args.folds)
    rows = study(sets, args.datasets)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
