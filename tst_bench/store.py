"""The run directory: what a run persists as it goes, so an interrupted run resumes.

    run.json          config + fingerprint, written when the run starts; the run-level timings of
                      the invocations so far, after each
    zero_shot.jsonl   the base model's predictions (no adapter)
    folds/rR_fF.json  one FoldResult per finished fold (`fold_key`: repeat R, fold F)
    adapters/rR_fF/   per-fold adapters while a fold runs (kept only with --save-adapters)
    result.json       TsTResult, written last
    samples.jsonl     one SampleResult per sample, written last

This module is the one place that knows these names: the engine writes runs and the reports read
them through `RunStore`, and a fold is named by `fold_key` everywhere (files, logs, memory checks).
Every file is written to a temporary name and renamed, so a file that exists is complete.
`open_fingerprinted` is how a run directory (and the prune directory, ibp.runner) is started or
resumed: a marker file holds the work's fingerprint, and different work is refused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .config import RunConfig
from .errors import InputError
from .jsonl import PydanticJSONLinesReader, PydanticJSONLinesWriter, write_json
from .schemas import FoldResult, LLMPredictionResult, RunTimings, SampleResult, TsTResult

logger = logging.getLogger(__name__)

RUN_MARKER = "run.json"
RESULT_FILE = "result.json"
SAMPLES_FILE = "samples.jsonl"
ZERO_SHOT_FILE = "zero_shot.jsonl"
FOLDS_DIR = "folds"
ADAPTERS_DIR = "adapters"


def fold_key(repeat: int, fold: int) -> str:
    """A fold's name: its result file, its adapter folder, its memory record, its log lines."""
    return f"r{repeat}_f{fold}"


class FoldId(Protocol):
    """Anything that names a fold of a run (a fold plan's FoldSpec, a FoldResult)."""

    @property
    def repeat(self) -> int: ...

    @property
    def fold(self) -> int: ...


@dataclass(frozen=True)
class DirectoryKind:
    """One kind of directory tst-bench fills: its name in messages, the marker file that holds the
    fingerprint and config, what `--overwrite` deletes (nothing else), and how a refusal names the
    work already there."""

    name: str
    marker: str
    owned: tuple[str, ...]
    describe: Callable[[dict[str, Any]], str]
    #: config fields (at any nesting) that do not change the work: a resume may change them
    free_fields: tuple[str, ...] = ()


def open_fingerprinted(
    root: Path, kind: DirectoryKind, fingerprint: str, config: dict[str, Any], overwrite: bool
) -> None:
    """Start the work in `root`, or resume it when the marker there has the same fingerprint.

    Different work, an unreadable marker or a folder with other content is an InputError (nothing
    is touched) unless `overwrite`, which deletes what this kind owns first.
    """
    check_output_dir(root)
    marker = root / kind.marker
    previous: dict[str, Any] = {}
    if marker.exists() and not overwrite:
        previous = _read_marker(marker)
        if previous.get("fingerprint") != fingerprint:
            before = previous.get("config") or {}
            raise InputError(
                f"{root} holds a different {kind.name} ({kind.describe(before)}):"
                f" {describe_changes(before, config, kind.free_fields)};"
                " choose another --out or pass --overwrite"
            )
        logger.info("resuming the %s in %s", kind.name, root)
    elif root.exists() and any(root.iterdir()) and not overwrite:
        raise InputError(f"{root} exists and is not a tst-bench {kind.name} directory; choose another --out")
    if overwrite:
        for name in kind.owned:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    # what a resumed marker recorded besides (a run's timings so far) stays
    write_json(marker, {**previous, "fingerprint": fingerprint, "config": config})


def check_output_dir(root: Path) -> None:
    """`root` can become the output folder: no file in the way, and writable (checked without
    writing anything, so a bad --out leaves no trace)."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == root else f"lies under {existing}, which is a file"
        raise InputError(f"--out {root} {where}, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {root}: {existing} is not writable for this user; choose another --out")


def describe_changes(before: dict[str, Any], now: dict[str, Any], free_fields: Sequence[str]) -> str:
    """What differs between the work in a folder and the work asked for, field by field."""
    old, new = _flat(before), _flat(now)
    changed = [
        f"{key} {old.get(key)!r} there, {new.get(key)!r} now"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key) and key.rsplit(".", 1)[-1] not in free_fields
    ]
    if not changed:
        return "same options, but the dataset's content (or tst-bench's result format) changed"
    return "; ".join(changed)


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _read_marker(marker: Path) -> dict[str, Any]:
    try:
        previous = json.loads(marker.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(
            f"{marker} is unreadable ({error}); choose another --out or pass --overwrite"
        ) from None
    if not isinstance(previous, dict):
        raise InputError(f"{marker} is not a tst-bench marker; choose another --out or pass --overwrite")
    return previous


def _describe_run(config: dict[str, Any]) -> str:
    return f"dataset {config.get('dataset')!r}, model {config.get('model')!r}"


RUN_DIRECTORY = DirectoryKind(
    name="run",
    marker=RUN_MARKER,
    owned=(RUN_MARKER, RESULT_FILE, SAMPLES_FILE, ZERO_SHOT_FILE, FOLDS_DIR),
    describe=_describe_run,
    free_fields=RunConfig.NON_RESULT_FIELDS,
)


class RunStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def marker_path(self) -> Path:
        return self.root / RUN_MARKER

    @property
    def folds_dir(self) -> Path:
        return self.root / FOLDS_DIR

    @property
    def adapters_dir(self) -> Path:
        return self.root / ADAPTERS_DIR

    @property
    def result_path(self) -> Path:
        return self.root / RESULT_FILE

    @property
    def samples_path(self) -> Path:
        return self.root / SAMPLES_FILE

    @property
    def zero_shot_path(self) -> Path:
        return self.root / ZERO_SHOT_FILE

    def fold_path(self, fold: FoldId) -> Path:
        return self.folds_dir / f"{fold_key(fold.repeat, fold.fold)}.json"

    def adapter_dir(self, fold: FoldId) -> Path:
        return self.adapters_dir / fold_key(fold.repeat, fold.fold)

    def is_run(self) -> bool:
        """A run was started here (finished or not)."""
        return self.marker_path.exists() or self.result_path.exists()

    def saved_fold_paths(self) -> list[Path]:
        """The result files of the folds finished so far, in name order."""
        return sorted(self.folds_dir.glob("*.json"))

    @classmethod
    def open(cls, root: Path, fingerprint: str, config: dict[str, Any], overwrite: bool = False) -> RunStore:
        """Start a run in `root`, or resume the one there if it is the same run."""
        store = cls(root)
        open_fingerprinted(store.root, RUN_DIRECTORY, fingerprint, config, overwrite)
        return store

    def has_fold(self, fold: FoldId) -> bool:
        return self.fold_path(fold).exists()

    def save_fold(self, result: FoldResult) -> None:
        write_json(self.fold_path(result), result)

    def load_folds(self, plan: Sequence[FoldId]) -> list[FoldResult]:
        return [_read_fold(self.fold_path(fold)) for fold in plan]

    def load_saved_folds(self) -> list[FoldResult]:
        """Every fold finished so far, whatever the plan."""
        return [_read_fold(path) for path in self.saved_fold_paths()]

    def load_zero_shot(self) -> list[LLMPredictionResult] | None:
        if not self.zero_shot_path.exists():
            return None
        return PydanticJSONLinesReader(self.zero_shot_path, LLMPredictionResult).read_all()

    def save_zero_shot(self, predictions: Sequence[LLMPredictionResult]) -> None:
        PydanticJSONLinesWriter(self.zero_shot_path).write_batch(predictions)

    def load_timings(self) -> RunTimings:
        """The run-level timings of earlier invocations (none for a fresh run)."""
        recorded = _read_marker(self.root / RUN_DIRECTORY.marker).get("timings")
        return RunTimings.model_validate(recorded) if recorded else RunTimings()

    def save_timings(self, timings: RunTimings) -> None:
        """Keep the timings so far in run.json, for the invocation that resumes the run."""
        marker = self.root / RUN_DIRECTORY.marker
        write_json(marker, {**_read_marker(marker), "timings": timings.model_dump(mode="json")})

    def write_final(self, result: TsTResult, samples: Sequence[SampleResult]) -> None:
        PydanticJSONLinesWriter(self.samples_path).write_batch(samples)
        write_json(self.result_path, result)


def _read_fold(path: Path) -> FoldResult:
    return FoldResult.model_validate_json(path.read_text(encoding="utf-8"))
