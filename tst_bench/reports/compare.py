"""Compare runs side by side: the first input is the baseline, every other one is checked against it.

Benchmarks are matched by name; when the baseline and another input hold one benchmark each they
are matched whatever their names (two run directories). The sources of truth are each run's
per-sample file (samples.jsonl, found through a benchmark record's tst_run_dir) and the benchmark
records (result.json, pytest-benchmark extra_info). Where both runs hold the same samples, their
scores are compared sample by sample (`paired`: exact McNemar test, paired bootstrap CI) and a
change is significant or not; otherwise a score beyond the baseline's 95% CI is. Which direction
fails (a rise by default, a drop, or both) is `Thresholds.fail_on` (see `checks`); memory a fold
did not release and a speedup drop always fail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from ..errors import InputError
from ..memory import MemoryRow
from .checks import (
    DEFAULT_THRESHOLDS,
    Finding,
    Thresholds,
    check_memory,
    check_paired_score,
    check_score,
    check_speedup,
    memory_check,
)
from .document import Document, Note, Paragraph, Section, Table, slug
from .inputs import RecordedBenchmark, load_source
from .paired import PairedComparison, paired_comparison, sample_mismatch

#: how a failed check starts in the comparison's notes (the console prints those in red)
FAILED = "FAILED"


class MetricRow(BaseModel):
    metric: str
    values: list[float | None]
    digits: int = 3


class BenchmarkComparison(BaseModel):
    name: str
    names: list[str | None]
    rows: list[MetricRow]
    findings: list[Finding]
    #: per input after the baseline: the sample-by-sample comparison, None where samples do not pair
    paired: list[PairedComparison | None] = []


class Comparison(BaseModel):
    inputs: list[str]
    thresholds: dict[str, float | bool | str]
    benchmarks: list[BenchmarkComparison]

    @property
    def findings(self) -> list[Finding]:
        return [finding for benchmark in self.benchmarks for finding in benchmark.findings]

    @property
    def regressions(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.regression]


def compare_inputs(paths: Sequence[str | Path], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Comparison:
    if len(paths) < 2:
        raise InputError("compare needs at least two inputs: a baseline and a run to check against it")
    labels = input_labels(paths)
    groups = [load_source(path, with_questions=False, strict_samples=True) for path in paths]
    benchmarks = [
        compare_benchmark(matched, labels, thresholds) for matched in match_benchmarks(groups, labels)
    ]
    return Comparison(inputs=labels, thresholds=dataclasses.asdict(thresholds), benchmarks=benchmarks)


def input_labels(paths: Sequence[str | Path]) -> list[str]:
    labels = []
    for path in paths:
        label = str(path)
        labels.append(label if label not in labels else f"{label} #{len(labels) + 1}")
    return labels


def match_benchmarks(
    groups: list[list[RecordedBenchmark]], labels: list[str]
) -> list[list[RecordedBenchmark | None]]:
    """Rows of benchmarks, one column per input; None where an input lacks that benchmark."""
    base = groups[0]
    rows: list[list[RecordedBenchmark | None]] = [
        [benchmark] + [None] * (len(groups) - 1) for benchmark in base
    ]
    for column, group in enumerate(groups[1:], start=1):
        unmatched = list(group)
        by_name = {benchmark.name: benchmark for benchmark in group}
        for row in rows:
            found = by_name.get(row[0].name) if row[0] else None
            if found is not None and found in unmatched:
                row[column] = found
                unmatched.remove(found)
        if len(base) == 1 and len(group) == 1 and unmatched:
            rows[0][column] = unmatched.pop()
        for benchmark in unmatched:
            extra: list[RecordedBenchmark | None] = [None] * len(groups)
            extra[column] = benchmark
            rows.append(extra)
    return rows


def compare_benchmark(
    matched: list[RecordedBenchmark | None], labels: list[str], thresholds: Thresholds
) -> BenchmarkComparison:
    name = next(benchmark.name for benchmark in matched if benchmark is not None)
    base = matched[0]
    findings: list[Finding] = []
    paired: list[PairedComparison | None] = []
    for label, other in zip(labels[1:], matched[1:], strict=True):
        if base is None or other is None:
            missing = labels[0] if base is None else label
            message = f"benchmark {name!r} is not in {missing}: not compared"
            findings.append(
                Finding(kind="missing", benchmark=name, run=missing, message=message, regression=False)
            )
            paired.append(None)
            continue
        pair, why_unpaired = pair_samples(base, other)
        paired.append(pair)
        findings += candidate_findings(name, label, base, other, pair, why_unpaired, thresholds)
    return BenchmarkComparison(
        name=name,
        names=[benchmark.name if benchmark else None for benchmark in matched],
        rows=metric_rows(matched),
        findings=findings,
        paired=paired,
    )


def pair_samples(
    base: RecordedBenchmark, other: RecordedBenchmark
) -> tuple[PairedComparison | None, str | None]:
    """The sample-by-sample comparison of two benchmarks, or None and why it is not possible."""
    if base.result is None or other.result is None:
        return None, None
    if base.result.metric != other.result.metric:
        return None, None  # check_score reports the mismatch
    for benchmark in (base, other):
        if not benchmark.samples:
            return None, f"{benchmark.source}: {benchmark.samples_note or 'no per-sample results'}"
    assert base.samples is not None and other.samples is not None
    problem = sample_mismatch(base.samples, other.samples)
    if problem is not None:
        return None, problem
    return paired_comparison(base.samples, other.samples), None


def candidate_findings(
    name: str,
    label: str,
    base: RecordedBenchmark,
    other: RecordedBenchmark,
    paired: PairedComparison | None,
    why_unpaired: str | None,
    thresholds: Thresholds,
) -> list[Finding]:
    findings = []
    if paired is not None and other.result is not None:
        findings += check_paired_score(name, label, other.result.metric, paired, thresholds)
    elif base.result is not None and other.result is not None:
        if why_unpaired:
            message = f"scores compared unpaired (against the baseline's 95% CI): {why_unpaired}"
            findings.append(
                Finding(kind="unpaired", benchmark=name, run=label, message=message, regression=False)
            )
        findings += check_score(name, label, base.result, other.result, thresholds)
    if other.result is not None:
        findings += check_memory(name, label, other.result, thresholds)
    if base.speedup is not None and other.speedup is not None:
        findings += check_speedup(name, label, base.speedup, other.speedup, thresholds)
    return findings


def metric_rows(matched: list[RecordedBenchmark | None]) -> list[MetricRow]:
    def row(metric: str, getter, digits: int = 3) -> MetricRow:
        return MetricRow(metric=metric, values=[getter(b) if b else None for b in matched], digits=digits)

    def from_result(getter):
        return lambda benchmark: getter(benchmark.result) if benchmark.result else None

    rows = [
        row("score", from_result(lambda r: r.score)),
        row("95% CI low", from_result(lambda r: r.ci95[0])),
        row("95% CI high", from_result(lambda r: r.ci95[1])),
        row("score std", from_result(lambda r: r.score_std)),
        row("zero-shot", from_result(lambda r: r.baselines.zero_shot)),
        row("majority", from_result(lambda r: r.baselines.majority)),
        row("chance", from_result(lambda r: r.baselines.chance)),
        row("samples", from_result(lambda r: r.n_samples), 0),
        row("run wall s", from_result(lambda r: r.wall_s), 1),
        row("benchmark mean s", lambda b: b.timing.mean if b.timing else None, 2),
    ]
    for device in sorted({r.device for b in matched for r in memory_rows(b)}):
        rows.append(row(f"peak MiB {device}", lambda b, d=device: memory_extreme(b, d, peak=True), 0))
        rows.append(
            row(f"max over baseline MiB {device}", lambda b, d=device: memory_extreme(b, d, peak=False), 0)
        )
    counts = sorted({(b.speedup.unit, c) for b in matched if b and b.speedup for c in b.speedup.counts})
    for unit, count in counts:
        rows.append(
            row(f"speedup @{count} {unit}", lambda b, c=count: b.speedup.at(c) if b.speedup else None, 2)
        )
    return [r for r in rows if any(value is not None for value in r.values)]


def memory_rows(benchmark: RecordedBenchmark | None) -> list[MemoryRow]:
    if benchmark is None or benchmark.result is None:
        return []
    check = memory_check(benchmark.result.folds, DEFAULT_THRESHOLDS)
    return check.rows if check else []


def memory_extreme(benchmark: RecordedBenchmark, device: str, peak: bool) -> float | None:
    rows = [r for r in memory_rows(benchmark) if r.device == device]
    values = [r.peak_mib for r in rows] if peak else [r.growth_mib for r in rows]
    return max(values) if values else None


# --- as a document -----------------------------------------------------------------------


def delta_table(comparison: BenchmarkComparison, labels: list[str]) -> Table:
    columns = ["metric", labels[0]] + [f"{label} (Δ)" for label in labels[1:]]
    rows = []
    for metric in comparison.rows:
        base = metric.values[0]
        cells = [metric.metric, fmt(base, metric.digits)]
        for value in metric.values[1:]:
            delta = "" if value is None or base is None else f" ({value - base:+.{metric.digits}f})"
            cells.append(fmt(value, metric.digits) + delta)
        rows.append(cells)
    return Table(columns, rows, numeric=tuple(range(1, len(columns))))


def paired_table(comparison: BenchmarkComparison, labels: list[str]) -> Table | None:
    """Sample-by-sample statistics against the baseline, one column per paired input."""
    columns = [
        (label, pair) for label, pair in zip(labels[1:], comparison.paired, strict=True) if pair is not None
    ]
    if not columns:
        return None
    statistics = [
        ("paired samples", lambda p: str(p.n_samples)),
        ("score difference (per sample)", lambda p: f"{p.difference:+.3f}"),
        ("95% paired bootstrap CI", lambda p: f"{p.ci95[0]:+.3f} to {p.ci95[1]:+.3f}"),
        ("McNemar exact p", lambda p: f"{p.mcnemar_p:.3g}"),
        ("significant at 95%", lambda p: "yes" if p.significant else "no"),
        ("right only in the baseline", lambda p: str(p.base_only_right)),
        ("right only in this run", lambda p: str(p.other_only_right)),
        ("changed predictions", lambda p: str(p.changed_predictions)),
        ("max |Δs(x)|", lambda p: fmt(p.max_bias_change, 4)),
    ]
    rows = [[name, *(show(pair) for _, pair in columns)] for name, show in statistics]
    header = ["paired vs baseline", *(label for label, _ in columns)]
    return Table(header, rows, numeric=tuple(range(1, len(header))))


def fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def comparison_document(comparison: Comparison) -> Document:
    sections = []
    for benchmark in comparison.benchmarks:
        title = " / ".join(dict.fromkeys(name for name in benchmark.names if name))
        section = Section(title, slug(title))
        section.add(delta_table(benchmark, comparison.inputs), paired_table(benchmark, comparison.inputs))
        section.add(*(Note(f"note ({f.run}): {f.message}") for f in benchmark.findings if not f.regression))
        sections.append(section)
    verdict = Section("Verdict", "verdict")
    failed = comparison.regressions
    verdict.add(
        Paragraph(f"{len(failed)} failed check(s)" if failed else "no failed checks"),
        *(Note(f"{FAILED} {f.benchmark} ({f.run}): {f.message}") for f in failed),
        Paragraph("Thresholds: " + ", ".join(f"{k}={v}" for k, v in comparison.thresholds.items())),
    )
    return Document(
        title="tst-bench comparison",
        subtitle=f"baseline {comparison.inputs[0]} vs {', '.join(comparison.inputs[1:])}",
        sections=[*sections, verdict],
    )
