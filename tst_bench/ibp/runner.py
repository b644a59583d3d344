"""Iterative Bias Pruning: diagnose with TsT, remove the rows with the highest s(x), re-diagnose.

Each round is an ordinary TsT run directory, named by the content of the dataset it diagnosed,
so the random control reuses IBP's first round and an interrupted prune resumes: rerunning the
same command recomputes only folds that are not on disk yet. The directory holds

    prune.json                     the pruning configuration and its fingerprint
    datasets/<content>.jsonl       the dataset each round diagnosed (loadable by load_dataset)
    runs/<content>/                that round's TsT run (result.json, samples.jsonl, folds/ ...)
    <strategy>/trajectory.json     score and size per round, precision against the planted flag
    <strategy>/removed.jsonl       removed ids with the round they left in
    <strategy>/pruned.jsonl        the pruned dataset
    comparison.json, curves.png    IBP against the random control of the same per-round counts
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..datasets import Dataset, load_dataset
from ..datasets.export import record_row, write_records
from ..datasets.rows import row_to_record
from ..engine import check_engines, run_tst
from ..errors import InputError
from ..folds import make_fold_plan
from ..jsonl import PydanticJSONLinesWriter, write_json
from ..metrics import auroc
from ..models import resolve_model
from ..schemas import QARecord
from ..store import DirectoryKind, open_fingerprinted
from .plot import plot_curves
from .selection import removable_count, select_highest_bias, select_random
from .trajectory import PruneRound, RemovedRow, StopReason, Strategy, Trajectory

logger = logging.getLogger(__name__)
PRUNE_FORMAT_VERSION = 1
PRUNE_DIRECTORY = DirectoryKind(
    name="prune",
    marker="prune.json",
    owned=("prune.json", "datasets", "runs", "ibp", "random", "comparison.json", "curves.png"),
    describe=lambda config: f"dataset {(config.get('run') or {}).get('dataset')!r}",
    free_fields=(*RunConfig.NON_RESULT_FIELDS, "plot"),
)


@dataclass
class PruneConfig:
    """An IBP run: the TsT to repeat (`run`, whose `out` is the prune directory) and the pruning rule.

    `budget` and `batch_size` are row counts or percentages of the initial rows ("40%").
    Rounds stop when the budget is spent, when the largest s(x) is at most `tau`, or when the
    floors (`min_rows` in total, `min_class_rows` per answer class when balanced) stop removal.
    """

    run: RunConfig
    budget: str = "40%"
    batch_size: str = "10%"
    tau: float | None = None
    balance: bool = False
    min_class_rows: int | None = None
    control: bool = True
    flag: str | None = "shortcut"
    plot: bool = True

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["run"] = self.run.to_dict()
        return data

    def fingerprint(self) -> str:
        data = self.to_dict()
        data["run"] = {k: v for k, v in data["run"].items() if k not in RunConfig.NON_RESULT_FIELDS}
        data.pop("plot")
        data["format_version"] = PRUNE_FORMAT_VERSION
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def class_floor(self) -> int:
        return self.min_class_rows if self.min_class_rows is not None else self.run.folds

    @property
    def min_rows(self) -> int:
        return 2 * self.run.folds


@dataclass
class PruneResult:
    ibp: Trajectory
    control: Trajectory | None
    root: Path
    plot: Path | None


def parse_count(text: str | int, total: int, name: str) -> int:
    """ "120" -> 120 rows; "25%" -> a quarter of `total`, rounded down."""
    value = str(text).strip()
    try:
        count = int(float(value[:-1]) * total / 100) if value.endswith("%") else int(value)
    except ValueError:
        raise InputError(f"{name} must be a row count or a percentage such as 10%, got {text!r}") from None
    if count < 0 or value.startswith("-"):
        raise InputError(f"{name} must not be negative, got {text!r}")
    return count


class PruneStore:
    """The prune directory; refuses to mix two different prunes, like RunStore does for runs."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def open(cls, config: PruneConfig, overwrite: bool) -> PruneStore:
        assert config.run.out is not None
        store = cls(Path(config.run.out))
        open_fingerprinted(store.root, PRUNE_DIRECTORY, config.fingerprint(), config.to_dict(), overwrite)
        return store

    def dataset_path(self, content: str) -> Path:
        return self.root / "datasets" / f"{content}.jsonl"

    def run_dir(self, content: str) -> Path:
        return self.root / "runs" / content

    def strategy_dir(self, strategy: Strategy) -> Path:
        return self.root / strategy


def run_prune(config: PruneConfig, overwrite: bool = False, progress: bool = False) -> PruneResult:
    """IBP, then (unless disabled) the random control with IBP's per-round removal counts."""
    initial, group_columns = _initial_records(config)
    budget = parse_count(config.budget, len(initial), "--budget")
    batch = parse_count(config.batch_size, len(initial), "--batch-size")
    if batch < 1:
        raise InputError(f"--batch-size {config.batch_size!r} removes no rows from {len(initial)}")
    if len(initial) < config.min_rows:
        raise InputError(f"pruning needs at least {config.min_rows} rows for {config.run.folds} folds")
    if config.tau is not None and not 0.0 <= config.tau <= 1.0:
        raise InputError(f"--tau must lie in [0, 1], got {config.tau}")
    make_fold_plan(initial, config.run.folds, config.run.seed, config.run.repeats)
    check_engines(config.run, resolve_model(config.run.model))
    store = PruneStore.open(config, overwrite)
    rounds = _Rounds(config, store, group_columns, budget, batch, progress)
    ibp = rounds.run("ibp", initial)
    control = rounds.run("random", initial, counts=ibp.removal_counts) if config.control else None
    plot = None
    if control is not None:
        write_json(store.root / "comparison.json", comparison(ibp, control))
        if config.plot:
            plot = plot_curves(ibp, control, store.root / "curves.png")
    return PruneResult(ibp, control, store.root, plot)


def _initial_records(config: PruneConfig) -> tuple[list[QARecord], tuple[str, ...]]:
    run = config.run
    dataset = load_dataset(run.dataset, run.limit, run.group_columns, run.row_rules)
    keys: dict[str, None] = {}
    for record in dataset.records:
        keys.update(dict.fromkeys(record.groups))
    group_columns = tuple(keys) or tuple(config.run.group_columns)
    return normalize(dataset.records, group_columns), group_columns


def normalize(records: Sequence[QARecord], group_columns: Sequence[str]) -> list[QARecord]:
    """Records exactly as they read back from the JSONL a round writes (so content names match)."""
    return [
        row_to_record(json.loads(json.dumps(record_row(record))), number, "pruning", group_columns)
        for number, record in enumerate(records, start=1)
    ]


def flag_of(record: QARecord, flag: str | None) -> bool | None:
    if flag is None or flag not in record.metadata:
        return None
    value = record.metadata[flag]
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


class _Rounds:
    def __init__(
        self,
        config: PruneConfig,
        store: PruneStore,
        group_columns: tuple[str, ...],
        budget: int,
        batch: int,
        progress: bool,
    ):
        self.config = config
        self.store = store
        self.group_columns = group_columns
        self.budget = budget
        self.batch = batch
        self.progress = progress

    def run(self, strategy: Strategy, initial: list[QARecord], counts: Sequence[int] = ()) -> Trajectory:
        config = self.config
        flag = config.flag if any(flag_of(r, config.flag) is not None for r in initial) else None
        current = list(initial)
        removed: list[RemovedRow] = []
        rounds: list[PruneRound] = []
        stop: StopReason
        while True:
            index = len(rounds)
            entry, bias = self._diagnose(index, current, len(removed), flag)
            wanted, stop_reason = self._wanted(strategy, index, entry, len(removed), counts)
            count = removable_count(current, wanted, config.balance, config.class_floor, config.min_rows)
            if count <= 0:
                stop = stop_reason or "min_rows"
                rounds.append(entry)
                logger.info("%s round %d: %s", strategy, index, _describe(entry))
                break
            if strategy == "ibp":
                chosen = select_highest_bias(
                    current, bias, count, config.balance, config.class_floor, config.run.seed
                )
            else:
                chosen = select_random(
                    current, count, config.balance, config.class_floor, config.run.seed, index
                )
            leaving = set(chosen)
            by_id = {record.id: record for record in current}
            removed.extend(
                RemovedRow(
                    id=record_id,
                    round=index,
                    bias_score=bias.get(record_id, 0.0),
                    answer=by_id[record_id].answer,
                    flag=flag_of(by_id[record_id], flag),
                )
                for record_id in chosen
            )
            entry.removed = len(chosen)
            entry.precision = _precision([row.flag for row in removed[-len(chosen) :]])
            entry.cumulative_precision = _precision([row.flag for row in removed])
            rounds.append(entry)
            logger.info("%s round %d: %s", strategy, index, _describe(entry))
            current = [record for record in current if record.id not in leaving]
        return self._finish(strategy, current, removed, rounds, stop, flag)

    def _wanted(
        self, strategy: Strategy, index: int, entry: PruneRound, spent: int, counts: Sequence[int]
    ) -> tuple[int, StopReason | None]:
        if strategy == "random":
            return (counts[index], None) if index < len(counts) else (0, "matched_control")
        if spent >= self.budget:
            return 0, "budget"
        if self.config.tau is not None and entry.max_bias <= self.config.tau:
            return 0, "tau"
        return min(self.batch, self.budget - spent), None

    def _diagnose(
        self, index: int, records: list[QARecord], removed_before: int, flag: str | None
    ) -> tuple[PruneRound, dict[str, float]]:
        content = Dataset("round", records).fingerprint
        path = self.store.dataset_path(content)
        if not path.exists():
            write_records(path, records)
        run_config = dataclasses.replace(
            self.config.run,
            dataset=str(path),
            limit=None,
            out=self.store.run_dir(content),
            group_columns=self.group_columns,
        )
        run = run_tst(run_config, progress=self.progress)
        bias = {sample.id: sample.bias_score or 0.0 for sample in run.samples}
        flags = {record.id: flag_of(record, flag) for record in records}
        flagged = [record_id for record_id, value in flags.items() if value]
        result = run.result
        entry = PruneRound(
            round=index,
            n_rows=len(records),
            removed_before=removed_before,
            score=result.score,
            score_std=result.score_std,
            metric=result.metric,
            chance=result.baselines.chance,
            majority=result.baselines.majority,
            mean_bias=statistics.fmean(bias.values()),
            max_bias=max(bias.values()),
            flag_rows=len(flagged) if flag else None,
            flag_auroc=_auroc(bias, flags) if flag else None,
            dataset=str(path.relative_to(self.store.root)),
            run_dir=str(run.store.root.relative_to(self.store.root)),
        )
        return entry, bias

    def _finish(
        self,
        strategy: Strategy,
        current: list[QARecord],
        removed: list[RemovedRow],
        rounds: list[PruneRound],
        stop: StopReason,
        flag: str | None,
    ) -> Trajectory:
        directory = self.store.strategy_dir(strategy)
        write_records(directory / "pruned.jsonl", current)
        PydanticJSONLinesWriter(directory / "removed.jsonl").write_batch(removed)
        trajectory = Trajectory(
            strategy=strategy,
            dataset=self.config.run.dataset,
            flag=flag,
            initial_rows=rounds[0].n_rows,
            budget=self.budget,
            batch_size=self.batch,
            tau=self.config.tau,
            balance=self.config.balance,
            stop_reason=stop,
            removed_total=len(removed),
            rounds=rounds,
            pruned_dataset=str((directory / "pruned.jsonl").relative_to(self.store.root)),
            removed_file=str((directory / "removed.jsonl").relative_to(self.store.root)),
            config=self.config.to_dict(),
        )
        write_json(directory / "trajectory.json", trajectory)
        logger.info(
            "%s: removed %d of %d rows in %d round(s), stopped by %s; score %.3f -> %.3f",
            strategy,
            len(removed),
            trajectory.initial_rows,
            len(rounds) - 1,
            stop,
            rounds[0].score,
            rounds[-1].score,
        )
        return trajectory


def comparison(ibp: Trajectory, control: Trajectory) -> dict[str, Any]:
    """Both curves on the same x (rows removed so far), for reports."""
    paired = []
    # the control stops early where its floors leave nothing to remove: pair the rounds both have
    for ibp_round, control_round in zip(ibp.rounds, control.rounds, strict=False):
        paired.append(
            {
                "round": ibp_round.round,
                "removed": ibp_round.removed_before,
                "ibp_score": ibp_round.score,
                "random_score": control_round.score,
                "ibp_precision": ibp_round.precision,
                "random_precision": control_round.precision,
                "chance": ibp_round.chance,
            }
        )
    return {
        "dataset": ibp.dataset,
        "metric": ibp.rounds[0].metric,
        "flag": ibp.flag,
        "rounds": paired,
        "ibp_final_score": ibp.rounds[-1].score,
        "random_final_score": control.rounds[-1].score,
        "removed_total": ibp.removed_total,
    }


def _precision(flags: Sequence[bool | None]) -> float | None:
    known = [value for value in flags if value is not None]
    return sum(known) / len(known) if known else None


def _auroc(bias: dict[str, float], flags: dict[str, bool | None]) -> float | None:
    labelled = [(bias.get(record_id, 0.0), value) for record_id, value in flags.items() if value is not None]
    if len({value for _, value in labelled}) < 2:
        return None
    return auroc([score for score, _ in labelled], [value for _, value in labelled])


def _describe(entry: PruneRound) -> str:
    text = f"{entry.n_rows} rows, {entry.metric} {entry.score:.3f}, max s(x) {entry.max_bias:.3f}"
    if entry.removed:
        text += f"; removing {entry.removed}"
        if entry.precision is not None:
            text += f" (precision {entry.precision:.2f})"
    return text
