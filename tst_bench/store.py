"""The run directory: what a run persists as it goes, so an interrupted run resumes.

    run.json          config + fingerprint, written when the run starts
    zero_shot.jsonl   the base model's predictions (no adapter)
    folds/rR_fF.json  one FoldResult per finished fold
    adapters/         per-fold adapters while a fold runs (kept only with --save-adapters)
    result.json       TsTResult, written last
    samples.jsonl     one SampleResult per sample, written last

Every file is written to a temporary name and renamed, so a file that exists is complete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InputError
from .folds import FoldSpec
from .jsonl import PydanticJSONLinesReader, PydanticJSONLinesWriter, write_json
from .schemas import FoldResult, LLMPredictionResult, SampleResult, TsTResult

logger = logging.getLogger(__name__)


class RunStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def folds_dir(self) -> Path:
        return self.root / "folds"

    @property
    def adapters_dir(self) -> Path:
        return self.root / "adapters"

    @property
    def result_path(self) -> Path:
        return self.root / "result.json"

    @property
    def samples_path(self) -> Path:
        return self.root / "samples.jsonl"

    @property
    def zero_shot_path(self) -> Path:
        return self.root / "zero_shot.jsonl"

    def fold_path(self, spec: FoldSpec) -> Path:
        return self.folds_dir / f"{spec.key}.json"

    def adapter_dir(self, spec: FoldSpec) -> Path:
        return self.adapters_dir / spec.key

    @classmethod
    def open(cls, root: Path, fingerprint: str, config: dict[str, Any], overwrite: bool = False) -> RunStore:
        """Start a run in `root`, or resume the one there if it is the same run."""
        store = cls(root)
        run_file = store.root / "run.json"
        if run_file.exists() and not overwrite:
            previous = json.loads(run_file.read_text())
            if previous.get("fingerprint") != fingerprint:
                raise InputError(
                    f"{root} holds a different run (dataset {previous['config'].get('dataset')!r},"
                    f" model {previous['config'].get('model')!r}); choose another --out or pass"
                    " --overwrite"
                )
            logger.info("resuming the run in %s", root)
        elif store.root.exists() and any(store.root.iterdir()) and not overwrite:
            raise InputError(f"{root} exists and is not a tst-bench run directory; choose another --out")
        if overwrite:
            store.clear()
        store.root.mkdir(parents=True, exist_ok=True)
        write_json(run_file, {"fingerprint": fingerprint, "config": config})
        return store

    def clear(self) -> None:
        for path in (self.result_path, self.samples_path, self.zero_shot_path, self.root / "run.json"):
            path.unlink(missing_ok=True)
        if self.folds_dir.exists():
            for path in self.folds_dir.glob("*.json"):
                path.unlink()

    def has_fold(self, spec: FoldSpec) -> bool:
        return self.fold_path(spec).exists()

    def save_fold(self, result: FoldResult) -> None:
        write_json(self.folds_dir / f"r{result.repeat}_f{result.fold}.json", result)

    def load_folds(self, plan: Sequence[FoldSpec]) -> list[FoldResult]:
        return [FoldResult.model_validate_json(self.fold_path(spec).read_text()) for spec in plan]

    def load_zero_shot(self) -> list[LLMPredictionResult] | None:
        if not self.zero_shot_path.exists():
            return None
        return PydanticJSONLinesReader(self.zero_shot_path, LLMPredictionResult).read_all()

    def save_zero_shot(self, predictions: Sequence[LLMPredictionResult]) -> None:
        PydanticJSONLinesWriter(self.zero_shot_path).write_batch(predictions)

    def write_final(self, result: TsTResult, samples: Sequence[SampleResult]) -> None:
        PydanticJSONLinesWriter(self.samples_path).write_batch(samples)
        write_json(self.result_path, result)
