"""What a report says about each benchmark, as a Document (rendered to Markdown and HTML).

First the user's benchmark: per dataset (model, backend/trainer) the TsT score with its 95% CI
against zero-shot, majority and chance, and a one-line verdict; then a table of every run. Per
benchmark: per-fold scores, the s(x) distribution and the most biased samples, speedup against the
ideal line, memory per fold and device, timing and run metadata. A section without data says why.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..schemas import FoldSummary, LabelIssues, SampleResult, TsTResult
from ..verdict import PooledVerdict, RunOfBenchmark, pool_runs
from . import plots
from .checks import DEFAULT_THRESHOLDS, Thresholds, check_memory, is_checked, memory_check
from .document import Document, Note, Paragraph, Section, Table, slug
from .environment import Environment
from .inputs import RecordedBenchmark

QUESTION_WIDTH = 180
COMMIT_KEYS = ("id", "branch", "dirty", "time", "project")
MACHINE_KEYS = (
    "node",
    "system",
    "release",
    "machine",
    "processor",
    "python_implementation",
    "python_version",
)
DEFAULT_TOP_BIASED = 10


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def clip(text: str, width: int = QUESTION_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def build_document(
    benchmarks: Sequence[RecordedBenchmark],
    environment: Environment,
    top_biased: int = DEFAULT_TOP_BIASED,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Document:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sources = sorted({benchmark.source for benchmark in benchmarks})
    labels = display_names(benchmarks)
    sections = [verdict_section(benchmarks, labels), runs_section(benchmarks, labels)]
    for index, (benchmark, label) in enumerate(zip(benchmarks, labels, strict=True)):
        sections.append(benchmark_section(index, benchmark, label, top_biased, thresholds))
    sections.append(environment_section(environment))
    return Document(
        title="tst-bench report",
        subtitle=f"{len(benchmarks)} benchmark(s) from {', '.join(sources)}; written {stamp}",
        sections=sections,
    )


def display_names(benchmarks: Sequence[RecordedBenchmark]) -> list[str]:
    """Benchmark names, with the file they came from where two inputs share a name."""
    counts = Counter(benchmark.name for benchmark in benchmarks)
    return [
        benchmark.name if counts[benchmark.name] == 1 else f"{benchmark.name} [{Path(benchmark.source).name}]"
        for benchmark in benchmarks
    ]


# --- the user's benchmark, then every run ----------------------------------------------------


def verdict_section(benchmarks: Sequence[RecordedBenchmark], labels: Sequence[str]) -> Section:
    """Per dataset (model, backend/trainer): the TsT score against the baselines and the verdict."""
    section = Section("Your benchmark: non-visual signal per dataset", "verdict")
    section.add(
        Paragraph(
            "The TsT score is what a blind model (question and option text only, no image) reaches on"
            " held-out folds after fine-tuning on the other folds. Where its 95% CI lies above the"
            " majority and chance baselines, the benchmark's text alone gives answers away."
        )
    )
    pairs = list(zip(benchmarks, labels, strict=True))
    judged = [(benchmark, label) for benchmark, label in pairs if benchmark.measures is None]
    measuring = [label for benchmark, label in pairs if benchmark.measures is not None and benchmark.result]
    if not any(benchmark.result for benchmark, _ in judged):  # only measurements: judge those
        judged, measuring = pairs, []
    groups = dataset_groups([b for b, _ in judged], [label for _, label in judged])
    if not groups:
        return section.add(Note("no input carries a TsT result: only timings are shown"))
    rows, plotted, sources = [], [], []
    for (dataset, model, backend, trainer), members in groups.items():
        pooled = pool_runs(members)
        judged_result = pooled_result(members, pooled)
        baselines = pooled.baselines
        low, high = pooled.verdict.ci95
        rows.append(
            [
                dataset,
                model,
                f"{backend}/{trainer}",
                pooled.metric,
                f"{pooled.verdict.score:.3f} [{low:.3f}, {high:.3f}]",
                num(baselines.zero_shot),
                num(baselines.majority),
                num(baselines.chance),
                str(len(pooled.pooled)),
                pooled.verdict.text,
            ]
        )
        plotted.append((f"{dataset}\n{model}, {backend}/{trainer}", judged_result))
        left_out = "".join(f"; not pooled: {label} ({why})" for label, why in pooled.not_pooled)
        sources.append(f"{dataset} / {model} / {backend}/{trainer}: {', '.join(pooled.pooled)}{left_out}")
    columns = ["dataset", "model", "backend/trainer", "metric", "TsT [95% CI]", "zero-shot", "majority"]
    columns += ["chance", "runs pooled", "verdict"]
    section.add(
        Table(columns, rows, numeric=(4, 5, 6, 7, 8)),
        plots.score_plot("verdict-scores", plotted),
        Paragraph(
            "One verdict per dataset, model and backend/trainer from all its runs: runs over the same"
            " samples (other seeds or repeats) are pooled per sample, and the 95% CI covers both the"
            " samples and the spread between training runs. Figures from: " + "; ".join(sources) + "."
        ),
    )
    if measuring:
        section.add(
            Note(f"not judged here, they measure memory or speed: {', '.join(measuring)} (see Every run)")
        )
    return section


def dataset_groups(
    benchmarks: Sequence[RecordedBenchmark], labels: Sequence[str]
) -> dict[tuple[str, str, str, str], list[RunOfBenchmark]]:
    """Runs by (dataset, model, backend, trainer), in the order the inputs first name them."""
    groups: dict[tuple[str, str, str, str], list[RunOfBenchmark]] = {}
    for benchmark, label in zip(benchmarks, labels, strict=True):
        result = benchmark.result
        if result is not None:
            key = (result.dataset, result.model, result.backend, result.trainer)
            groups.setdefault(key, []).append(RunOfBenchmark(label, result, benchmark.samples))
    return groups


def pooled_result(members: Sequence[RunOfBenchmark], pooled: PooledVerdict) -> TsTResult:
    """A result that carries the pooled score, CI and baselines, for the score plot."""
    first = min(members, key=lambda run: run.label).result
    verdict = pooled.verdict
    return first.model_copy(
        update={"score": verdict.score, "ci95": verdict.ci95, "baselines": pooled.baselines}
    )


def runs_section(benchmarks: Sequence[RecordedBenchmark], labels: Sequence[str]) -> Section:
    section = Section("Every run", "runs")
    scored = [
        (label, benchmark.result)
        for benchmark, label in zip(benchmarks, labels, strict=True)
        if benchmark.result
    ]
    if scored:
        section.add(score_table(scored))
    unscored = [
        label for benchmark, label in zip(benchmarks, labels, strict=True) if benchmark.result is None
    ]
    if unscored:
        section.add(Note(f"without a TsT result (timing only): {', '.join(unscored)}"))
    return section


def score_table(scored: Sequence[tuple[str, TsTResult]]) -> Table:
    rows = []
    for name, result in scored:
        baselines = result.baselines
        best = max(
            value
            for value in (baselines.zero_shot, baselines.majority, baselines.chance)
            if value is not None
        )
        rows.append(
            [
                name,
                result.metric,
                f"{result.score:.3f} ± {result.score_std:.3f}",
                f"{result.ci95[0]:.3f}–{result.ci95[1]:.3f}",
                num(baselines.zero_shot),
                num(baselines.majority),
                num(baselines.chance),
                f"{result.score - best:+.3f}",
                str(result.n_samples),
                f"{result.n_folds}×{result.n_repeats}",
                num(result.wall_s, 1),
            ]
        )
    columns = [
        "benchmark",
        "metric",
        "TsT ± std",
        "95% CI",
        "zero-shot",
        "majority",
        "chance",
        "TsT − best baseline",
        "samples",
        "folds×repeats",
        "wall s",
    ]
    return Table(columns, rows, numeric=(2, 3, 4, 5, 6, 7, 8, 10))


# --- one benchmark -----------------------------------------------------------------------


def benchmark_section(
    index: int, benchmark: RecordedBenchmark, label: str, top_biased: int, thresholds: Thresholds
) -> Section:
    prefix = f"{index:02d}-{slug(benchmark.name)}"
    section = Section(label, prefix)
    section.add(Paragraph(f"Source: {benchmark.source}"))
    result = benchmark.result
    if result is None:
        section.add(Note("no TsT result in this benchmark's extra_info (tst_result): timing only"))
    else:
        section.subsections += [
            folds_section(prefix, result),
            bias_section(prefix, benchmark, top_biased),
            answer_keys_section(prefix, benchmark, result.label_issues, top_biased),
        ]
    section.subsections += [
        speedup_section(prefix, benchmark),
        memory_section(prefix, result, thresholds),
        metadata_section(prefix, benchmark),
    ]
    return section


def folds_section(prefix: str, result: TsTResult) -> Section:
    section = Section("Per-fold scores", f"{prefix}-folds")
    section.add(plots.fold_plot(f"{prefix}-folds", result))
    rows = [
        [
            str(fold.repeat),
            str(fold.fold),
            f"{fold.score:.3f}",
            f"{fold.majority_score:.3f}",
            str(fold.n_train),
            str(fold.n_test),
            num(fold.timings.train_s, 1),
            num(fold.timings.load_s, 1),
            num(fold.timings.score_s, 1),
            num(fold.timings.total_s, 1),
            f"{fold.adapter_size_bytes / 1024:.0f}",
            fold.worker or "–",
        ]
        for fold in result.folds
    ]
    columns = ["repeat", "fold", "score", "majority", "train n", "test n", "train s", "load s", "score s"]
    columns += ["total s", "adapter KiB", "worker"]
    section.add(Table(columns, rows, numeric=tuple(range(2, 11))))
    for column, values in result.by_group.items():
        group_rows = [[value, f"{score:.3f}"] for value, score in values.items()]
        section.add(
            Paragraph(f"Held-out {result.metric} by {column}:"),
            Table([column, result.metric], group_rows, (1,)),
        )
    return section


def bias_section(prefix: str, benchmark: RecordedBenchmark, top_biased: int) -> Section:
    section = Section("Bias scores s(x)", f"{prefix}-bias")
    samples = benchmark.samples
    if not samples:
        return section.add(Note(f"no per-sample results: {benchmark.samples_note}"))
    assert benchmark.result is not None
    plot = plots.bias_plot(f"{prefix}-bias", samples, benchmark.result.baselines.chance)
    if plot is None:
        return section.add(Note("the samples carry no s(x) (bias_score is empty for every sample)"))
    values = [sample.bias_score for sample in samples if sample.bias_score is not None]
    section.add(
        plot,
        Paragraph(
            f"s(x) over {len(values)} samples: mean {statistics.fmean(values):.3f}, median"
            f" {statistics.median(values):.3f}, above 0.5 for {sum(v > 0.5 for v in values)} samples."
            " The most biased samples are the ones a blind model answers most confidently."
        ),
        most_biased_table(benchmark, samples, top_biased),
    )
    if benchmark.questions is None:
        section.add(Note(benchmark.questions_note or "question text is not available"))
    return section


def most_biased_table(benchmark: RecordedBenchmark, samples: Sequence[SampleResult], top: int) -> Table:
    ranked = sorted(
        (sample for sample in samples if sample.bias_score is not None),
        key=lambda sample: (-(sample.bias_score or 0.0), sample.id),
    )[:top]
    questions = benchmark.questions or {}
    rows = []
    for rank, sample in enumerate(ranked, start=1):
        record = questions.get(sample.id)
        answer = sample.target
        if record is not None and record.format == "mc":
            answer = f"{sample.target}: {record.options[record.letters.index(sample.target)]}"
        rows.append(
            [
                str(rank),
                sample.id,
                clip(record.question) if record else "–",
                clip(answer, 60),
                clip(sample.prediction, 60),
                f"{sample.bias_score:.3f}",
            ]
        )
    return Table(["#", "id", "question", "answer", "prediction", "s(x)"], rows, numeric=(0, 5))


def answer_keys_section(
    prefix: str, benchmark: RecordedBenchmark, found: LabelIssues | None, top: int
) -> Section:
    """The samples whose held-out models confidently disagree with the key (tst_bench/label_issues.py)."""
    section = Section("Possible wrong answer keys", f"{prefix}-keys")
    if found is None:
        return section.add(Note("this result was written before answer keys were checked"))
    if found.status != "checked":
        return section.add(Note(f"answer keys not checked: {found.note}"))
    reliable = (
        f"the {found.cleanlab_flagged} cleanlab flags, kept where the models are at least"
        f" {found.reliable_from:.2f} confident (from there their top option matches the key in 90%"
        " or more)"
        if found.reliable_from is not None
        else f"none of the {found.cleanlab_flagged} cleanlab flags: the models are never reliably confident"
    )
    section.add(
        Paragraph(
            f"{len(found.issues)} of {found.checked} multiple-choice samples have possibly wrong keys:"
            f" models that never trained on them confidently pick another option ({reliable})."
            " Check these keys first; a blind model can only spot a wrong key where the text gives"
            " the answer away."
        )
    )
    questions = benchmark.questions or {}

    def option(sample_id: str, letter: str) -> str:
        record = questions.get(sample_id)
        return f"{letter}: {record.options[record.letters.index(letter)]}" if record else letter

    rows = [
        [
            str(rank),
            issue.id,
            clip(questions[issue.id].question) if issue.id in questions else "–",
            clip(option(issue.id, issue.given), 60),
            f"{issue.given_probability:.3f}",
            clip(option(issue.id, issue.suggested), 60),
            f"{issue.suggested_probability:.3f}",
        ]
        for rank, issue in enumerate(found.issues[:top], start=1)
    ]
    if rows:
        columns = ["#", "id", "question", "key", "p(key)", "models' pick", "p(pick)"]
        section.add(Table(columns, rows, numeric=(0, 4, 6)))
    if len(found.issues) > top:
        section.add(Note(f"{len(found.issues) - top} more in result.json (label_issues)"))
    if found.note:
        section.add(Note(f"cleanlab: {found.note}"))
    return section


def speedup_section(prefix: str, benchmark: RecordedBenchmark) -> Section:
    section = Section("Speedup", f"{prefix}-speedup")
    series = benchmark.speedup
    if series is None:
        return section.add(
            Note(
                "no speedup series in this input (the GPU/worker scaling benchmark records it as"
                " extra_info['tst_speedup'])"
            )
        )
    first_count, first_speedup = series.counts[0], series.speedup[0]
    rows = []
    for count, seconds, speedup in zip(series.counts, series.seconds, series.speedup, strict=True):
        ideal = first_speedup * count / first_count
        rows.append([str(count), num(seconds, 2), f"{speedup:.2f}", f"{ideal:.2f}", f"{speedup / ideal:.0%}"])
    section.add(
        plots.speedup_plot(f"{prefix}-speedup", series),
        Table([series.unit, "seconds", "speedup", "ideal", "efficiency"], rows, numeric=(0, 1, 2, 3, 4)),
    )
    if series.hardware:
        section.add(Paragraph(f"Measured on: {series.hardware}"))
    return section


def memory_section(prefix: str, result: TsTResult | None, thresholds: Thresholds) -> Section:
    section = Section("Memory per fold", f"{prefix}-memory")
    folds = result.folds if result else []
    plot = plots.memory_plot(f"{prefix}-memory", folds)
    if plot is None:
        return section.add(
            Note(
                "no memory samples recorded (this run was not watched by a memory monitor; NVML not sampled)"
            )
        )
    sources = {fold.memory.source for fold in folds if fold.memory}
    if "rss" in sources:
        section.add(Note("NVML not available; RSS shown (process resident memory, not GPU memory)"))
    section.add(plot, memory_table(folds, thresholds))
    assert result is not None
    for finding in check_memory(section.title, "", result, thresholds):
        section.add(Note(finding.message))
    return section


def memory_table(folds: Sequence[FoldSummary], thresholds: Thresholds) -> Table:
    check = memory_check(folds, thresholds)
    rows = []
    checked = check is not None and is_checked(check.source, thresholds)
    for row in check.rows if check else []:
        released = ("yes" if row.ok else "no") if checked else "not checked (RSS)"
        rows.append(
            [
                row.fold,
                row.device,
                num(row.baseline_mib, 0),
                num(row.peak_mib, 0),
                num(row.after_mib, 0),
                f"{row.growth_mib:+.0f}",
                num(row.allowed_mib, 0),
                released,
            ]
        )
    columns = ["fold", "device", "baseline MiB", "peak MiB", "after clean-up MiB", "over baseline MiB"]
    columns += ["allowed MiB", "released"]
    return Table(columns, rows, numeric=(2, 3, 4, 5, 6))


def metadata_section(prefix: str, benchmark: RecordedBenchmark) -> Section:
    section = Section("Run metadata", f"{prefix}-metadata")
    if benchmark.timing is not None:
        stats = benchmark.timing
        rows = [[name, num(getattr(stats, name), 3)] for name in ("mean", "stddev", "min", "max", "median")]
        rows.append(["rounds", str(stats.rounds if stats.rounds is not None else "–")])
        section.add(
            Paragraph("pytest-benchmark timing (seconds):"), Table(["statistic", "value"], rows, (1,))
        )
    if benchmark.result is not None:
        config = benchmark.result.config or {}
        rows = [[key, flat(value)] for key, value in config.items() if key != "out"]
        section.add(Paragraph("Run configuration:"), Table(["setting", "value"], rows))
    recorded = benchmark.metadata
    if recorded.empty:
        return section.add(
            Note(
                "this input records no commit, package versions or hardware; see 'Report environment'"
                " for the machine and versions that wrote this report"
            )
        )
    rows = [[f"commit {key}", flat(recorded.commit[key])] for key in COMMIT_KEYS if key in recorded.commit]
    rows += [
        [f"machine {key}", flat(recorded.machine[key])] for key in MACHINE_KEYS if key in recorded.machine
    ]
    cpu = recorded.machine.get("cpu")
    if isinstance(cpu, dict):
        rows += [[f"cpu {key}", flat(cpu[key])] for key in ("brand_raw", "count") if key in cpu]
    if recorded.hardware is not None:
        rows.append(["hardware", flat(recorded.hardware)])
    if recorded.datetime:
        rows.append(["recorded at", recorded.datetime])
    return section.add(Paragraph("Recorded with the benchmark:"), Table(["field", "value"], rows))


def flat(value: Any) -> str:
    """A short one-line text for a metadata value (nested dicts as key=value pairs)."""
    if isinstance(value, dict):
        return clip(", ".join(f"{k}={flat(v)}" for k, v in value.items() if v not in (None, "", [], {})), 200)
    if isinstance(value, list | tuple):
        return clip(", ".join(flat(item) for item in value), 200)
    return clip(str(value), 200)


# --- environment -------------------------------------------------------------------------


def environment_section(environment: Environment) -> Section:
    section = Section("Report environment", "environment")
    section.add(Paragraph("The machine, checkout and package versions that wrote this report."))
    git = environment.git
    if git is None:
        section.add(Note(environment.git_note or "no git commit"))
    else:
        rows = [
            ["commit", git.commit],
            ["branch", git.branch or "–"],
            ["uncommitted changes", str(git.dirty)],
        ]
        section.add(Table(["git", "value"], rows))
    section.add(
        Table(["package", "version"], [[name, version] for name, version in environment.packages.items()])
    )
    hardware = [[key, value] for key, value in environment.hardware.items()]
    hardware += [["gpu", gpu] for gpu in environment.gpus]
    section.add(Table(["hardware", "value"], hardware))
    if environment.gpu_note:
        section.add(Note(environment.gpu_note))
    return section
