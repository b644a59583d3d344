"""`write_report`: inputs in, `report.md` + `figures/*.png` + a self-contained `report.html` out.

The pytest plugin calls it at the end of `pytest benchmarks`; `tst-bench report` calls it from the
command line. Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..jsonl import atomic_write
from .checks import DEFAULT_THRESHOLDS, Thresholds
from .content import DEFAULT_TOP_BIASED, build_document
from .environment import current_environment
from .html import render_html
from .inputs import ReportSource, load_inputs
from .markdown import plot_path, render_markdown

logger = logging.getLogger(__name__)

FIGURE_DIR = "figures"


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    figures: tuple[Path, ...]

    @property
    def paths(self) -> list[Path]:
        return [self.markdown, self.html, *self.figures]


def write_report(
    inputs: Sequence[ReportSource],
    out_dir: str | Path = "reports",
    top_biased: int = DEFAULT_TOP_BIASED,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> ReportFiles:
    """Write the report of `inputs` (run dirs, result.json or pytest-benchmark JSON files, folders
    of them, in-memory pytest-benchmark documents or loaded Benchmarks) into `out_dir`."""
    benchmarks = load_inputs(inputs)
    document = build_document(benchmarks, current_environment(), top_biased, thresholds)
    out = Path(out_dir)
    figures = []
    for plot in document.plots():
        path = out / plot_path(plot, FIGURE_DIR)
        with atomic_write(path, "wb") as handle:
            handle.write(plot.png)
        figures.append(path)
    markdown, html = out / "report.md", out / "report.html"
    with atomic_write(markdown) as handle:
        handle.write(render_markdown(document, FIGURE_DIR))
    with atomic_write(html) as handle:
        handle.write(render_html(document))
    logger.info("report of %d benchmark(s): %s and %s", len(benchmarks), html, markdown)
    return ReportFiles(markdown=markdown, html=html, figures=tuple(figures))
