"""Which tests a session runs, and over what: parametrization over the option lists, skips for
GPU markers the machine cannot serve, `slow` (--tst-skip-slow) and `heavy` (unless --tst-full),
and the backend/trainer names checked before anything runs."""

from __future__ import annotations

import pytest

from ..sweep.grid import configuration_name
from .settings import TsTSettings

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
#: the fixture that carries one configuration of --tst-grid into tst_runner
GRID_FIXTURE = "tst_grid_point"
#: fixtures that build models through the backend registry: their names are checked at collection
REGISTRY_FIXTURES = {"tst_runner", "tst_predictor", "tst_trainer", "tst_model_cache"}


def parametrize(settings: TsTSettings, metafunc: pytest.Metafunc) -> None:
    """Parametrize the tests that use a PARAMETRIZED fixture over its option list, unless the test
    parametrizes that name itself."""
    explicit = {
        name.strip()
        for marker in metafunc.definition.iter_markers("parametrize")
        for name in (marker.args[0].split(",") if isinstance(marker.args[0], str) else marker.args[0])
    }
    for fixture, field in PARAMETRIZED.items():
        if fixture in metafunc.fixturenames and fixture not in explicit:
            values = getattr(settings, field)
            metafunc.parametrize(fixture, values, ids=[short_id(value) for value in values])
    if settings.grid and GRID_FIXTURE in metafunc.fixturenames and GRID_FIXTURE not in explicit:
        points = list(settings.grid)
        metafunc.parametrize(GRID_FIXTURE, points, ids=[configuration_name(point) for point in points])


def short_id(value: str) -> str:
    """A readable test id for a dataset/model spec: paths shortened to their file name."""
    return (
        value.rstrip("/").rsplit("/", 1)[-1] if "/" in value and not value.startswith("synthetic:") else value
    )


def mark_items(settings: TsTSettings, items: list[pytest.Item]) -> None:
    """Skip (with the reason) what this machine or these options do not run."""
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
    from ..hardware import nvml_status, torch_cuda_count

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
    from ..registry import BACKENDS, TRAINERS

    unknown = [f"backend {name!r}" for name in settings.backends if name not in BACKENDS]
    unknown += [f"trainer {name!r}" for name in settings.trainers if name not in TRAINERS]
    if unknown:
        raise pytest.UsageError(
            f"tst-bench: unknown {', '.join(unknown)}; backends: {sorted(BACKENDS)},"
            f" trainers: {sorted(TRAINERS)}"
        )
