"""Report figures as PNG bytes (matplotlib, Agg canvas; no pyplot state, no display needed).

Each function returns None when its data is absent, so the caller can say why instead.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..schemas import FoldSummary, SampleResult, TsTResult
from .checks import fold_label
from .inputs import SpeedupSeries

DPI = 100
PHASE_LABELS = {"before": "before (baseline)", "peak": "peak", "after_cleanup": "after clean-up"}
COLORS = {
    "tst": "#4c72b0",
    "zero_shot": "#8172b2",
    "majority": "#dd8452",
    "chance": "#9a9a9a",
    "correct": "#55a868",
    "wrong": "#c44e52",
    "before": "#8da0cb",
    "peak": "#e78ac3",
    "after_cleanup": "#66c2a5",
}


@dataclass(frozen=True)
class Plot:
    """A rendered figure: `key` names its file, `alt` describes it for text-only readers."""

    key: str
    title: str
    alt: str
    png: bytes


def render(figure: Figure, key: str, title: str, alt: str) -> Plot:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return Plot(key=key, title=title, alt=alt, png=buffer.getvalue())


def outside_legend(axes) -> None:
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def wrapped(name: str, width: int = 24) -> str:
    """A tick label in lines of about `width` characters, broken at spaces, after `/` and before a
    dataset spec's `?`/`&` parameters; nothing is cut off."""
    lines: list[str] = []

    def close(text: str) -> None:
        lines.extend(textwrap.wrap(text, width, break_on_hyphens=False) or [""])

    for line in name.split("\n"):
        current = ""
        for piece in re.split(r"(?=[?&])|(?<=/)", line):
            if current and len(current) + len(piece) > width:
                close(current)
                current = ""
            current += piece
        close(current)
    return "\n".join(lines)


def score_plot(key: str, results: Sequence[tuple[str, TsTResult]]) -> Plot | None:
    """Per (labelled) result: TsT score with its 95% CI next to zero-shot, majority and chance."""
    if not results:
        return None
    figure = Figure(figsize=(min(18.0, max(5.0, 2.2 * len(results) + 2)), 3.8))
    axes = figure.add_subplot()
    width = 0.2
    labelled: set[str] = set()
    for index, (_, result) in enumerate(results):
        low, high = result.ci95
        bars = [
            ("tst", "TsT (95% CI)", result.score, (result.score - low, high - result.score)),
            ("zero_shot", "zero-shot", result.baselines.zero_shot, None),
            ("majority", "majority", result.baselines.majority, None),
            ("chance", "chance", result.baselines.chance, None),
        ]
        for offset, (color, label, value, error) in enumerate(bars):
            if value is None:
                continue
            bar = axes.bar(
                index + (offset - 1.5) * width,
                value,
                width,
                color=COLORS[color],
                label=None if label in labelled else label,
                yerr=[[error[0]], [error[1]]] if error else None,
                capsize=4,
            )
            labelled.add(label)
            top = value + (error[1] if error else 0.0)
            axes.annotate(
                f"{value:.2f}",
                (bar[0].get_x() + width / 2, top),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize="x-small",
            )
    axes.set_xticks(range(len(results)), [wrapped(name) for name, _ in results], fontsize="small")
    axes.set_ylabel("score")
    axes.set_ylim(0, 1.05)
    outside_legend(axes)
    axes.set_title("Blind (TsT) score vs baselines")
    axes.grid(axis="y", alpha=0.3)
    alt = "; ".join(f"{name}: TsT {r.score:.3f} (CI {r.ci95[0]:.3f}-{r.ci95[1]:.3f})" for name, r in results)
    return render(figure, key, "Score vs baselines", alt)


def fold_plot(key: str, result: TsTResult) -> Plot | None:
    """Each fold's held-out score and majority baseline, with the mean and its 95% CI band."""
    if not result.folds:
        return None
    figure = Figure(figsize=(min(18.0, max(4.5, 0.6 * len(result.folds) + 2.5)), 3.2))
    axes = figure.add_subplot()
    labels = [fold_label(fold) for fold in result.folds]
    positions = range(len(labels))
    axes.bar(positions, [fold.score for fold in result.folds], color=COLORS["tst"], label="fold score")
    axes.scatter(
        positions,
        [fold.majority_score for fold in result.folds],
        color=COLORS["majority"],
        marker="_",
        s=400,
        linewidths=3,
        label="fold majority",
        zorder=3,
    )
    axes.axhspan(*result.ci95, color=COLORS["tst"], alpha=0.15, label="95% CI of the mean")
    axes.axhline(result.score, color=COLORS["tst"], linestyle="--", linewidth=1, label="mean")
    axes.set_xticks(list(positions), labels, rotation=45 if len(labels) > 10 else 0)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel(result.metric)
    axes.set_title("Per-fold held-out score")
    outside_legend(axes)
    alt = ", ".join(f"{label} {fold.score:.3f}" for label, fold in zip(labels, result.folds, strict=True))
    return render(figure, key, "Per-fold scores", alt)


def bias_plot(key: str, samples: Sequence[SampleResult], chance: float) -> Plot | None:
    """Histogram of s(x), split by whether the held-out prediction was right."""
    scored = [(sample.bias_score, sample.correct) for sample in samples if sample.bias_score is not None]
    if not scored:
        return None
    figure = Figure(figsize=(5.5, 3.2))
    axes = figure.add_subplot()
    right = [score for score, correct in scored if correct]
    wrong = [score for score, correct in scored if not correct]
    axes.hist(
        [wrong, right],
        bins=20,
        range=(0.0, 1.0),
        stacked=True,
        color=[COLORS["wrong"], COLORS["correct"]],
        label=["predicted wrong", "predicted right"],
    )
    axes.axvline(chance, color=COLORS["chance"], linestyle="--", label=f"chance {chance:.2f}")
    axes.set_xlabel("s(x): held-out probability of the true answer")
    axes.set_ylabel("samples")
    axes.set_title(f"Bias score distribution ({len(scored)} samples)")
    axes.legend(fontsize="small")
    mean = sum(score for score, _ in scored) / len(scored)
    return render(figure, key, "s(x) distribution", f"{len(scored)} samples, mean s(x) {mean:.3f}")


def speedup_plot(key: str, series: SpeedupSeries) -> Plot:
    """Measured speedup over GPUs/workers against the ideal (linear) line."""
    figure = Figure(figsize=(4.8, 3.4))
    axes = figure.add_subplot()
    first_count, first_speedup = series.counts[0], series.speedup[0]
    ideal = [first_speedup * count / first_count for count in series.counts]
    axes.plot(series.counts, ideal, color=COLORS["chance"], linestyle="--", label="ideal (linear)")
    axes.plot(series.counts, series.speedup, color=COLORS["tst"], marker="o", label="measured")
    for count, speedup in zip(series.counts, series.speedup, strict=True):
        axes.annotate(
            f"{speedup:.2f}x", (count, speedup), textcoords="offset points", xytext=(0, 6), ha="center"
        )
    axes.set_xticks(series.counts)
    axes.set_xlabel(series.unit)
    axes.set_ylabel("speedup")
    axes.set_ylim(0, max(*ideal, *series.speedup) * 1.15)
    axes.set_title(f"Speedup vs {series.unit}")  # the hardware is named under the plot
    axes.legend(fontsize="small", loc="upper left")
    alt = ", ".join(
        f"{c} {series.unit}: {s:.2f}x" for c, s in zip(series.counts, series.speedup, strict=True)
    )
    return render(figure, key, "Speedup", alt)


def memory_plot(key: str, folds: Sequence[FoldSummary]) -> Plot | None:
    """Per device: memory before each fold, its peak, and after its clean-up."""
    measured = [fold for fold in folds if fold.memory is not None]
    if not measured:
        return None
    memories = [fold.memory for fold in measured if fold.memory is not None]
    devices = sorted({sample.device for memory in memories for sample in memory.peak})
    columns = min(2, len(devices))
    rows = -(-len(devices) // columns)
    figure = Figure(figsize=(max(4.8, 0.55 * len(measured) + 2.5) * columns, 3.0 * rows))
    width = 0.27
    for index, device in enumerate(devices):
        axes = figure.add_subplot(rows, columns, index + 1)
        for offset, phase in enumerate(("before", "peak", "after_cleanup")):
            values = [device_mib(getattr(fold.memory, phase), device) for fold in measured]
            axes.bar(
                [position + (offset - 1) * width for position in range(len(measured))],
                [value or 0.0 for value in values],
                width,
                color=COLORS[phase],
                label=PHASE_LABELS[phase],
            )
        labels = [fold_label(fold) for fold in measured]
        axes.set_xticks(range(len(measured)), labels, rotation=45 if len(labels) > 10 else 0)
        axes.set_ylabel("MiB used")
        source = memories[0].source
        axes.set_title(f"{device} ({source})")
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=3, frameon=False)
    figure.suptitle("Memory per fold: before, peak, after clean-up")
    figure.tight_layout()
    return render(figure, key, "Memory per fold", f"{len(measured)} folds on {', '.join(devices)}")


def device_mib(samples: Sequence, device: str) -> float | None:
    for sample in samples:
        if sample.device == device:
            return sample.used_mib
    return None
