"""The tst-bench pytest plugin (entry point `pytest11: tst_bench`; `-p no:tst_bench` turns it off).

It adds the `tst-bench` option group (with ini equivalents), the markers `gpu`, `multi_gpu(n)`,
`slow` and `heavy` (skipped unless --tst-full), the fixtures of `tst_bench.bench.fixtures`,
parametrization of benchmarks over the option lists (datasets x models x backends x trainers), a
terminal summary of every TsT run with its per-fold memory table, and the report (Markdown + HTML)
of the session's TsT benchmarks. Loading it stays cheap: GPUs are discovered through NVML, torch is
imported only by fixtures that run models.
"""

from __future__ import annotations

import pytest

from .bench.fixtures import (
    RECORDS_KEY,
    SETTINGS_KEY,
    settings_of,
    tst_backend_name,
    tst_dataset,
    tst_dataset_spec,
    tst_gpus,
    tst_hardware,
    tst_memory_monitor,
    tst_model_cache,
    tst_model_name,
    tst_predictor,
    tst_ray,
    tst_runner,
    tst_settings,
    tst_speedup_recorder,
    tst_trainer,
    tst_trainer_name,
)
from .bench.recording import SessionRecords, format_speedup
from .bench.settings import TsTSettings, add_options, describe, resolve_settings

__all__ = [
    "tst_backend_name",
    "tst_dataset",
    "tst_dataset_spec",
    "tst_gpus",
    "tst_hardware",
    "tst_memory_monitor",
    "tst_model_cache",
    "tst_model_name",
    "tst_predictor",
    "tst_ray",
    "tst_runner",
    "tst_settings",
    "tst_speedup_recorder",
    "tst_trainer",
    "tst_trainer_name",
]

MARKERS = (
    "gpu: needs a CUDA GPU (skipped with the reason when none is visible)",
    "multi_gpu(n): needs at least n CUDA GPUs (skipped with the reason when fewer are visible)",
    "slow: takes more than a few seconds (real training runs); --tst-skip-slow skips them",
    "heavy: a long benchmark (minutes on a CPU); runs only with --tst-full (make bench-full)",
)
#: parametrized fixture name -> the settings field holding its values
PARAMETRIZED = {
    "tst_dataset_spec": "datasets",
    "tst_model_name": "models",
    "tst_backend_name": "backends",
    "tst_trainer_name": "trainers",
}
#: fixtures that build models through the backend registry: their names are checked at collection
REGISTRY_FIXTURES = {"tst_runner", "tst_predictor", "tst_trainer", "tst_model_cache"}


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    from .hardware import discover_gpus

    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[SETTINGS_KEY] = resolve_settings(config, gpu_count=len(discover_gpus()))
    config.stash[RECORDS_KEY] = SessionRecords()


def pytest_report_header(config: pytest.Config) -> list[str]:
    from .hardware import hardware_summary, nvml_status

    return [
        describe(settings_of(config)),
        f"tst-bench hardware: {hardware_summary()}; {nvml_status().describe()}",
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = settings_of(metafunc.config)
    explicit = {
        name.strip()
        for marker in metafunc.definition.iter_markers("parametrize")
        for name in (marker.args[0].split(",") if isinstance(marker.args[0], str) else marker.args[0])
    }
    for fixture, field in PARAMETRIZED.items():
        if fixture in metafunc.fixturenames and fixture not in explicit:
            values = getattr(settings, field)
            metafunc.parametrize(fixture, values, ids=[short_id(value) for value in values])


def short_id(value: str) -> str:
    """A readable test id for a dataset/model spec: paths shortened to their file name."""
    return (
        value.rstrip("/").rsplit("/", 1)[-1] if "/" in value and not value.startswith("synthetic:") else value
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = settings_of(config)
    if any(REGISTRY_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        check_registry_names(settings)
    needs_gpus = [
        item for item in items if item.get_closest_marker("gpu") or item.get_closest_marker("multi_gpu")
    ]
    available, why = usable_cuda_gpus(settings) if needs_gpus else (0, "")
    for item in needs_gpus:
        wanted = gpus_wanted(item)
        if available < wanted:
            item.add_marker(pytest.mark.skip(reason=gpu_skip_reason(wanted, available, why)))
    if settings.skip_slow:
        reason = "slow test skipped by --tst-skip-slow (run without that option to include it)"
        for item in items:
            if item.get_closest_marker("slow"):
                item.add_marker(pytest.mark.skip(reason=reason))
    if not settings.full:
        for item in items:
            heavy = item.get_closest_marker("heavy")
            if heavy:
                why = f" ({heavy.kwargs['reason']})" if heavy.kwargs.get("reason") else ""
                item.add_marker(pytest.mark.skip(reason=f"heavy benchmark{why}: runs with --tst-full"))


def gpus_wanted(item: pytest.Item) -> int:
    marker = item.get_closest_marker("multi_gpu")
    if marker is None:
        return 1
    wanted = marker.args[0] if marker.args else marker.kwargs.get("n")
    if not isinstance(wanted, int) or wanted < 1:
        raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.multi_gpu(n) with a GPU count n >= 1")
    return wanted


def usable_cuda_gpus(settings: TsTSettings) -> tuple[int, str]:
    """(CUDA GPUs tests may use, why not more): NVML's visible GPUs, torch's CUDA and --tst-gpus agree."""
    from .hardware import nvml_status, torch_cuda_count

    if settings.gpu_count == 0:
        status = nvml_status()
        return 0, status.reason if not status.available else "no GPU visible (check CUDA_VISIBLE_DEVICES)"
    torch_count = torch_cuda_count()
    if torch_count == 0:
        return 0, f"NVML lists {settings.gpu_count} GPU(s) but torch has no CUDA (a CPU build of torch?)"
    available = min(settings.usable_gpus, torch_count)
    if settings.gpus is not None and settings.gpus < min(settings.gpu_count, torch_count):
        return (
            available,
            f"--tst-gpus {settings.gpus} limits the {min(settings.gpu_count, torch_count)} present",
        )
    return available, ""


def gpu_skip_reason(wanted: int, found: int, why: str) -> str:
    what = "a CUDA GPU" if wanted == 1 else f"{wanted} CUDA GPUs"
    where = "a GPU runner" if wanted == 1 else "a multi-GPU runner"
    detail = f"; {why}" if why else ""
    return f"needs {what}, found {found}{detail} (run on {where})"


def check_registry_names(settings: TsTSettings) -> None:
    from .registry import BACKENDS, TRAINERS

    unknown = [f"backend {name!r}" for name in settings.backends if name not in BACKENDS]
    unknown += [f"trainer {name!r}" for name in settings.trainers if name not in TRAINERS]
    if unknown:
        raise pytest.UsageError(
            f"tst-bench: unknown {', '.join(unknown)}; backends: {sorted(BACKENDS)},"
            f" trainers: {sorted(TRAINERS)}"
        )


@pytest.hookimpl(trylast=True)  # after pytest-benchmark has finished its statistics
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    settings = session.config.stash.get(SETTINGS_KEY, None)
    records = session.config.stash.get(RECORDS_KEY, None)
    if settings is None or settings.report is None or records is None:
        return
    from .bench.report import write_session_report
    from .errors import TsTError

    try:
        records.report_files = write_session_report(session.config, settings.report) or []
    except (TsTError, OSError, ValueError) as error:
        records.report_error = f"report not written to {settings.report}: {type(error).__name__}: {error}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    records = config.stash.get(RECORDS_KEY, None)
    if records is None or records.empty:
        return
    terminalreporter.section("tst-bench")
    if records.report_files:
        terminalreporter.write_line("report: " + ", ".join(str(path) for path in records.report_files))
    if records.report_error:
        terminalreporter.write_line(records.report_error, red=True)
    for run in records.runs:
        for line in run.splitlines():
            terminalreporter.write_line(line)
        terminalreporter.write_line("")
    if records.speedup is not None:
        for executor in records.speedup.seconds:
            terminalreporter.write_line(format_speedup(records.speedup.curve(executor)))
