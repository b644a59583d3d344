"""The report written at the end of `pytest benchmarks` (`--tst-report DIR`, default `reports/`).

Its input is this session's results as pytest-benchmark would save them with `--benchmark-json`,
so the report reads the same as `tst-bench report bench.json` would.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

logger = logging.getLogger(__name__)

#: extra_info keys that make a benchmark part of the report
REPORTED_KEYS = frozenset({"tst_result", "tst_speedup"})


def session_document(config: pytest.Config) -> dict[str, Any] | None:
    """The session's TsT benchmarks as a pytest-benchmark JSON document, or None when none ran."""
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's own session object
    if session is None or not session.benchmarks:
        return None
    document = config.hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=session.benchmarks,
        include_data=False,
        machine_info=session.get_machine_info(),
        commit_info=config.hook.pytest_benchmark_generate_commit_info(config=config),
    )
    reported = []
    for entry in document["benchmarks"]:
        # a copy: pytest-benchmark hands out each benchmark's own live extra_info dict
        extra = dict(entry.get("extra_info") or {})
        if None in (extra.get("tst_speedup") or {}).get("speedup", ()):
            del extra["tst_speedup"]  # no 1-worker run in this session: nothing to relate to
        if REPORTED_KEYS & set(extra):
            reported.append({**entry, "extra_info": extra})
    return {**document, "benchmarks": reported} if reported else None


def write_session_report(config: pytest.Config, out_dir: Path) -> list[Path] | None:
    """The written report files, or None when the session recorded no TsT benchmark."""
    document = session_document(config)
    if document is None:
        return None
    from ..reports.write import write_report  # matplotlib: imported only when there is a report

    files = write_report([document], out_dir)
    return [files.html, files.markdown]
