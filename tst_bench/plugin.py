"""The tst-bench pytest plugin (entry point `pytest11: tst_bench`; `-p no:tst_bench` turns it off).

It adds the `tst-bench` option group (with ini equivalents), the markers `gpu`, `multi_gpu(n)`,
`slow` and `heavy` (skipped unless --tst-full), the fixtures of `tst_bench.bench.fixtures`,
parametrization of benchmarks over the option lists (datasets x models x backends x trainers), a
terminal summary of every TsT run with its per-fold memory table, and the report (Markdown + HTML)
of the session's TsT runs. One `TsTSession` (bench/session.py) owns the state; the hooks below
delegate to it. Loading it stays cheap: GPUs are discovered through NVML, torch is imported only
by fixtures that run models.
"""

from __future__ import annotations

import pytest

from .bench import selection
from .bench.fixtures import (
    tst_backend_name,
    tst_dataset,
    tst_dataset_spec,
    tst_gpus,
    tst_grid_point,
    tst_hardware,
    tst_memory_monitor,
    tst_model_cache,
    tst_model_name,
    tst_predictor,
    tst_ray,
    tst_runner,
    tst_session,
    tst_settings,
    tst_speedup_recorder,
    tst_trainer,
    tst_trainer_name,
)
from .bench.session import SESSION_KEY, TsTSession, settings_of
from .bench.settings import add_options

__all__ = [
    "settings_of",
    "tst_backend_name",
    "tst_dataset",
    "tst_dataset_spec",
    "tst_gpus",
    "tst_grid_point",
    "tst_hardware",
    "tst_memory_monitor",
    "tst_model_cache",
    "tst_model_name",
    "tst_predictor",
    "tst_ray",
    "tst_runner",
    "tst_session",
    "tst_settings",
    "tst_speedup_recorder",
    "tst_trainer",
    "tst_trainer_name",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in selection.MARKERS:
        config.addinivalue_line("markers", line)
    TsTSession.start(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return TsTSession.of(config).header()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    selection.parametrize(settings_of(metafunc.config), metafunc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selection.mark_items(settings_of(config), items)


@pytest.hookimpl(trylast=True)  # after pytest-benchmark has finished its statistics
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    tst = session.config.stash.get(SESSION_KEY, None)
    if tst is not None:
        tst.finish(session)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    tst = config.stash.get(SESSION_KEY, None)
    if tst is not None:
        tst.display(terminalreporter)
