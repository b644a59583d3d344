"""Reports a benchmark designer reads after a run, and comparisons CI can gate on.

`write_report(inputs, out_dir)` writes `report.md` (+ `figures/`) and one self-contained
`report.html`; `compare_inputs(paths, thresholds)` lines runs up against a baseline and lists
regressions. Inputs are run directories and pytest-benchmark JSON files (see `inputs`).
Names are imported lazily so the CLI does not load matplotlib until a report is written.
"""

from __future__ import annotations

from ..lazy_exports import lazy_getattr

_EXPORTS = {
    "RecordedBenchmark": "inputs",
    "SpeedupSeries": "inputs",
    "load_inputs": "inputs",
    "Finding": "checks",
    "Thresholds": "checks",
    "Comparison": "compare",
    "compare_inputs": "compare",
    "ReportFiles": "write",
    "write_report": "write",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
