"""Read what reports are made of into typed models: run directories and pytest-benchmark JSON.

A *run directory* holds `result.json` (TsTResult) and `samples.jsonl` (SampleResult per sample).
A *pytest-benchmark JSON* file (`--benchmark-json`, `.benchmarks/**/*.json`) holds benchmarks whose
`extra_info` carries `tst_result` (a TsTResult), optionally `tst_speedup`, `tst_hardware`,
`tst_run_dir` (a run directory with the samples) and `tst_measures` (memory, speedup: a run that is
not about the dataset's score). Both become `RecordedBenchmark`s, the unit that reports
and comparisons work on. Unreadable input is an InputError naming the file; optional parts that are
missing (samples, the dataset behind the questions) degrade to a note saying why.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import InputError, TsTError
from ..jsonl import PydanticJSONLinesReader
from ..schemas import QARecord, SampleResult, TsTResult
from ..store import RESULT_FILE, RunStore

logger = logging.getLogger(__name__)


class SpeedupSeries(BaseModel):
    """Wall seconds of the same work over 1..N GPUs or workers, and the speedup over the first."""

    unit: Literal["workers", "gpus"]
    counts: list[int] = Field(min_length=1)
    seconds: list[float]
    speedup: list[float]
    hardware: str | None = None

    @model_validator(mode="after")
    def _same_lengths(self) -> SpeedupSeries:
        if not len(self.counts) == len(self.seconds) == len(self.speedup):
            raise ValueError("counts, seconds and speedup must have the same length")
        if any(count < 1 for count in self.counts):
            raise ValueError("counts must be positive")
        return self

    def at(self, count: int) -> float | None:
        return dict(zip(self.counts, self.speedup, strict=True)).get(count)


class BenchmarkStats(BaseModel):
    """The part of pytest-benchmark's timing statistics a report shows (seconds)."""

    model_config = ConfigDict(extra="allow")

    min: float | None = None
    max: float | None = None
    mean: float | None = None
    stddev: float | None = None
    median: float | None = None
    rounds: int | None = None
    iterations: int | None = None


class TsTExtraInfo(BaseModel):
    """What our benchmarks put into pytest-benchmark's `extra_info`."""

    model_config = ConfigDict(extra="allow")

    tst_result: TsTResult | None = None
    tst_speedup: SpeedupSeries | None = None
    tst_hardware: Any = None
    tst_run_dir: str | None = None
    #: set by benchmarks whose TsT run measures something else (memory, speedup) on a set of their
    #: own choosing: the report's per-dataset verdict leaves them out
    tst_measures: str | None = None


class BenchmarkRecord(BaseModel):
    """One entry of a pytest-benchmark JSON file's `benchmarks` list."""

    model_config = ConfigDict(extra="allow")

    name: str
    fullname: str | None = None
    group: str | None = None
    params: dict[str, Any] | None = None
    stats: BenchmarkStats | None = None
    extra_info: TsTExtraInfo = Field(default_factory=TsTExtraInfo)


class BenchmarkFile(BaseModel):
    """A pytest-benchmark JSON document."""

    model_config = ConfigDict(extra="allow")

    machine_info: dict[str, Any] = Field(default_factory=dict)
    commit_info: dict[str, Any] = Field(default_factory=dict)
    benchmarks: list[BenchmarkRecord]
    datetime: str | None = None
    version: str | None = None


class RecordedMetadata(BaseModel):
    """What the input itself recorded about where it ran (empty for a bare run directory)."""

    commit: dict[str, Any] = Field(default_factory=dict)
    machine: dict[str, Any] = Field(default_factory=dict)
    hardware: Any = None
    datetime: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.commit or self.machine or self.hardware or self.datetime)


class RecordedBenchmark(BaseModel):
    """One TsT benchmark (or a plain timed benchmark) as reports and comparisons see it."""

    name: str
    source: str
    result: TsTResult | None = None
    samples: list[SampleResult] | None = None
    samples_note: str | None = None
    questions: dict[str, QARecord] | None = None
    questions_note: str | None = None
    speedup: SpeedupSeries | None = None
    timing: BenchmarkStats | None = None
    measures: str | None = None
    metadata: RecordedMetadata = Field(default_factory=RecordedMetadata)


ReportSource = str | Path | Mapping[str, Any] | RecordedBenchmark


def load_inputs(sources: Sequence[ReportSource], with_questions: bool = True) -> list[RecordedBenchmark]:
    """Every benchmark in `sources`, in order: run dirs, result.json / benchmark JSON files, folders
    of benchmark JSON files (`.benchmarks`), in-memory pytest-benchmark documents or Benchmarks."""
    if not sources:
        raise InputError("no inputs given: pass run directories or pytest-benchmark JSON files")
    benchmarks: list[RecordedBenchmark] = []
    for source in sources:
        benchmarks.extend(load_source(source, with_questions))
    return benchmarks


def load_source(
    source: ReportSource, with_questions: bool = True, strict_samples: bool = False
) -> list[RecordedBenchmark]:
    """The benchmarks of one input. With `strict_samples` a samples.jsonl that exists but does not
    read is an InputError (compare relies on it); otherwise it degrades to a note."""
    if isinstance(source, RecordedBenchmark):
        return [source]
    if isinstance(source, Mapping):
        return benchmarks_from_document(source, "pytest-benchmark session", with_questions, strict_samples)
    path = Path(source)
    if path.is_dir():
        if RunStore(path).is_run():
            return [load_run_dir(path, with_questions, strict_samples=strict_samples)]
        return load_folder(path, with_questions, strict_samples)
    return load_json_file(path, with_questions, strict_samples)


def load_folder(root: Path, with_questions: bool, strict_samples: bool) -> list[RecordedBenchmark]:
    """Every run directory and pytest-benchmark JSON file under `root`, at any depth: a folder of
    runs, a `--tst-results` folder, a prune directory, `.benchmarks`. A run directory is read as a
    whole (its fold files are its own), named by its path under `root`; an unfinished one is
    skipped with a warning, other JSON documents (a prune's trajectory, a comparison) quietly."""
    benchmarks: list[RecordedBenchmark] = []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders.sort()
        run = RunStore(here)
        if run.is_run():
            subfolders.clear()
            name = here.relative_to(root).as_posix()
            if run.result_path.exists():
                run = load_run_dir(here, with_questions, strict_samples=strict_samples, name=name)
                benchmarks.append(run)
            else:
                logger.warning("skipped %s: %s", here, unfinished_run(here))
            continue
        for file in sorted(name for name in files if name.endswith(".json")):
            document = read_json(here / file)
            if is_benchmark_document(document):
                benchmarks.extend(
                    benchmarks_from_document(document, str(here / file), with_questions, strict_samples)
                )
            else:
                logger.debug("not a report input, skipped: %s", here / file)
    if not benchmarks:
        raise InputError(
            f"{root}: neither a run directory (no {RESULT_FILE}) nor a folder with run directories or"
            " pytest-benchmark JSON files in it or below it"
        )
    return benchmarks


def is_benchmark_document(document: Any) -> bool:
    return isinstance(document, dict) and "benchmarks" in document


def load_json_file(
    path: Path, with_questions: bool = True, strict_samples: bool = False
) -> list[RecordedBenchmark]:
    document = read_json(path)
    if is_benchmark_document(document):
        return benchmarks_from_document(document, str(path), with_questions, strict_samples)
    if isinstance(document, dict) and "metric" in document and "folds" in document:
        return [load_run_dir(path.parent, with_questions, result_path=path, strict_samples=strict_samples)]
    raise InputError(
        f"{path}: not a tst-bench result.json nor a pytest-benchmark JSON file (no 'benchmarks' list)"
    )


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or directory") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None


def load_run_dir(
    path: Path,
    with_questions: bool = True,
    result_path: Path | None = None,
    strict_samples: bool = False,
    name: str | None = None,
) -> RecordedBenchmark:
    """The run in `path`, named `name` (default: the folder's name)."""
    run = RunStore(path)
    result_path = result_path or run.result_path
    if not result_path.exists():
        raise InputError(f"{path}: {unfinished_run(path)}")
    result = validated(TsTResult, read_json(result_path), str(result_path))
    samples, samples_note = read_samples(run.samples_path, strict_samples)
    benchmark = RecordedBenchmark(
        name=name or path.resolve().name,
        source=str(path),
        result=result,
        samples=samples,
        samples_note=samples_note,
    )
    return attach_questions(benchmark) if with_questions else benchmark


def unfinished_run(path: Path) -> str:
    done = len(RunStore(path).saved_fold_paths())
    return (
        f"no {RESULT_FILE}: the run has not finished ({done} folds saved);"
        " rerun its `tst-bench run` command to complete it"
    )


def benchmarks_from_document(
    document: Mapping[str, Any], origin: str, with_questions: bool = True, strict_samples: bool = False
) -> list[RecordedBenchmark]:
    session = validated(BenchmarkFile, document, origin)
    benchmarks = []
    for record in session.benchmarks:
        extra = record.extra_info
        samples, samples_note = None, "the pytest-benchmark JSON records the summary only (no tst_run_dir)"
        if extra.tst_run_dir:
            samples, samples_note = read_samples(
                RunStore(Path(extra.tst_run_dir)).samples_path, strict_samples
            )
        benchmark = RecordedBenchmark(
            name=record.name,
            source=origin,
            result=extra.tst_result,
            samples=samples,
            samples_note=samples_note,
            speedup=extra.tst_speedup,
            measures=extra.tst_measures,
            timing=record.stats,
            metadata=RecordedMetadata(
                commit=session.commit_info,
                machine=session.machine_info,
                hardware=extra.tst_hardware,
                datetime=session.datetime,
            ),
        )
        benchmarks.append(attach_questions(benchmark) if with_questions else benchmark)
    return benchmarks


def validated(model: type[BaseModel], data: Any, origin: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(
            f"{origin}: not a valid {model.__name__}: field '{where}': {first['msg']}"
            f" ({error.error_count()} problem(s))"
        ) from None


def read_samples(path: Path, strict: bool = False) -> tuple[list[SampleResult] | None, str | None]:
    """The run's per-sample results, or None and why they are missing (strict: unreadable raises)."""
    if not path.exists():
        return None, f"{path} is missing: no per-sample results"
    try:
        return PydanticJSONLinesReader(path, SampleResult).read_all(), None
    except (InputError, OSError, ValueError) as error:
        if strict:
            raise (
                error if isinstance(error, InputError) else InputError(f"{path}: cannot read: {error}")
            ) from None
        logger.warning("%s", error)
        return None, f"{path} is unreadable: {error}"


def attach_questions(benchmark: RecordedBenchmark) -> RecordedBenchmark:
    """Add the question text of the benchmark's samples from its dataset, when it still loads."""
    if benchmark.result is None or not benchmark.samples:
        return benchmark
    questions, note = load_questions(benchmark.result, benchmark.samples)
    return benchmark.model_copy(update={"questions": questions, "questions_note": note})


def load_questions(
    result: TsTResult, samples: Sequence[SampleResult]
) -> tuple[dict[str, QARecord] | None, str | None]:
    from ..datasets import load_dataset
    from ..datasets.rows import DEFAULT_GROUP_COLUMNS

    spec = result.config.get("dataset") or result.dataset
    limit = result.config.get("limit")
    group_columns = result.config.get("group_columns") or DEFAULT_GROUP_COLUMNS
    try:
        records = load_dataset(spec, limit, tuple(group_columns)).records
    except (TsTError, OSError, ValueError, ImportError) as error:
        logger.warning("questions not shown: dataset %s did not load: %s", spec, error)
        return None, f"dataset {spec} did not load ({error}); question text is not shown"
    by_id = {record.id: record for record in records}
    changed = [s.id for s in samples if s.id not in by_id or by_id[s.id].answer != s.target]
    if changed:
        return None, (
            f"dataset {spec} changed since the run ({len(changed)} sample(s) missing or with another"
            f" answer, e.g. {changed[0]}); question text is not shown"
        )
    return by_id, None
