"""The report written at the end of a pytest session (`--tst-report DIR`, default `reports/`).

Its input is a pytest-benchmark JSON document, so it reads the same as `tst-bench report
bench.json` would: this session's benchmarks as pytest-benchmark would save them with
`--benchmark-json` (those that carry a TsT result or a speedup curve), and every TsT run through
`tst_runner` that no such benchmark carries (a test without `benchmark`, or a test's earlier runs),
in the order they ran.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from .recording import RecordedRun

logger = logging.getLogger(__name__)

#: extra_info keys that make a benchmark part of the report
REPORTED_KEYS = frozenset({"tst_result", "tst_speedup"})


def session_document(
    config: pytest.Config, benchmark_session: Any, runs: Sequence[RecordedRun]
) -> dict[str, Any] | None:
    """The session's TsT runs and benchmarks as a pytest-benchmark JSON document, or None when
    there are none. `benchmark_session` is pytest-benchmark's session object (None when the plugin
    is off)."""
    document: dict[str, Any] = {"machine_info": {}, "commit_info": {}, "benchmarks": []}
    if benchmark_session is not None:
        document = config.hook.pytest_benchmark_generate_json(
            config=config,
            benchmarks=benchmark_session.benchmarks,
            include_data=False,
            machine_info=benchmark_session.get_machine_info(),
            commit_info=config.hook.pytest_benchmark_generate_commit_info(config=config),
        )
    reported = [entry for entry in map(reported_entry, document["benchmarks"]) if entry is not None]
    carried = {entry["extra_info"].get("tst_run_dir"): index for index, entry in enumerate(reported)}
    ordered: list[dict[str, Any]] = []
    placed: set[int] = set()
    for run in runs:
        index = carried.get(run.run_dir)
        if index is None:
            ordered.append(run.benchmark_entry())
        elif index not in placed:
            ordered.append(reported[index])
            placed.add(index)
    ordered += [entry for index, entry in enumerate(reported) if index not in placed]
    return {**document, "benchmarks": ordered} if ordered else None


def reported_entry(entry: dict[str, Any]) -> dict[str, Any] | None:
    """A benchmark entry as the report takes it, or None for a benchmark that is not a TsT one."""
    # a copy: pytest-benchmark hands out each benchmark's own live extra_info dict
    extra = dict(entry.get("extra_info") or {})
    if None in (extra.get("tst_speedup") or {}).get("speedup", ()):
        del extra["tst_speedup"]  # no 1-worker run in this session: nothing to relate to
    return {**entry, "extra_info": extra} if REPORTED_KEYS & set(extra) else None


def write_session_report(
    config: pytest.Config, benchmark_session: Any, runs: Sequence[RecordedRun], out_dir: Path
) -> list[Path]:
    """The written report files; none when the session ran no TsT."""
    document = session_document(config, benchmark_session, runs)
    if document is None:
        return []
    from ..reports.write import write_report  # matplotlib: imported only when there is a report

    files = write_report([document], out_dir)
    return [files.html, files.markdown]
