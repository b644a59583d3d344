"""The plugin's fixtures: thin handles on the session (bench/session.py), which owns the state.

Heavy imports (torch, transformers, ray) happen inside them, on first use. `pytest --fixtures`
shows each one's first paragraph.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .session import TsTSession
from .settings import TsTSettings


@pytest.fixture(scope="session")
def tst_session(pytestconfig: pytest.Config) -> TsTSession:
    """The tst-bench session object: settings, every TsT run recorded so far (`.runs`), the shared
    models and Ray runtime, and the report written at the end (`--tst-report`)."""
    return TsTSession.of(pytestconfig)


@pytest.fixture(scope="session")
def tst_settings(tst_session: TsTSession) -> TsTSettings:
    """The resolved --tst-* options (command line over ini over defaults): models, datasets,
    backends, trainers, folds, gpus, workers, memory tolerance, results and report folders."""
    return tst_session.settings


@pytest.fixture(scope="session")
def tst_gpus(tst_settings: TsTSettings) -> tuple[Any, ...]:
    """The CUDA GPUs this session may use (NVML, by UUID), capped by --tst-gpus; () on a CPU."""
    from ..hardware import discover_gpus

    return discover_gpus()[: tst_settings.usable_gpus]


@pytest.fixture(scope="session")
def tst_hardware() -> dict[str, Any]:
    """A description of the machine: CPU, memory, GPUs by UUID, NVML status (recorded with runs)."""
    from ..hardware import describe_hardware

    return describe_hardware()


@pytest.fixture
def tst_memory_monitor(tst_gpus) -> Iterator[Any]:
    """A started MemoryMonitor over `tst_gpus` (NVML; the process RSS, saying why, without NVML):
    `begin(key)` / `end(key)` around a piece of work give its before, peak and after."""
    from ..memory import MemoryMonitor, open_probe

    with MemoryMonitor(open_probe(tst_gpus)) as monitor:
        yield monitor


# The names below are parametrized over the option lists by the plugin (bench/selection.py);
# these bodies are what a test gets when it parametrizes none of them itself.
@pytest.fixture
def tst_dataset_spec(tst_settings: TsTSettings) -> str:
    """The dataset spec under test; the plugin parametrizes it over --tst-dataset."""
    return tst_settings.datasets[0]


@pytest.fixture
def tst_model_name(tst_settings: TsTSettings) -> str:
    """The model under test; the plugin parametrizes it over --tst-model."""
    return tst_settings.models[0]


@pytest.fixture
def tst_backend_name(tst_settings: TsTSettings) -> str:
    """The inference backend under test; the plugin parametrizes it over --tst-backend."""
    return tst_settings.backends[0]


@pytest.fixture
def tst_trainer_name(tst_settings: TsTSettings) -> str:
    """The trainer under test; the plugin parametrizes it over --tst-trainer."""
    return tst_settings.trainers[0]


@pytest.fixture
def tst_grid_point() -> dict[str, Any] | None:
    """The configuration of --tst-grid this test runs (option -> value), which `tst_runner` applies
    to every run over the test's own options; the plugin parametrizes it over the grid's
    combinations. None without --tst-grid."""
    return None


@pytest.fixture
def tst_dataset(tst_dataset_spec: str):
    """The dataset under test, loaded: a `Dataset` with `.records` (QARecord: id, question,
    options, answer, format, groups) and `.fingerprint`."""
    from ..datasets import load_dataset

    return load_dataset(tst_dataset_spec)


@pytest.fixture(scope="session")
def tst_model_cache(tst_session: TsTSession) -> Iterator[Any]:
    """The session's predictors and trainers, each model built once (bench/model_cache.py);
    closed at the end of the session."""
    yield tst_session.models()
    tst_session.close_models()


@pytest.fixture
def tst_predictor(
    tst_model_cache, tst_model_name: str, tst_backend_name: str, tst_settings, tst_gpus, request
):
    """The session's shared predictor (an LLMPredictorInterface) for the model and backend under
    test: built once per model; after the test its adapter is dropped and its memory must be back
    within --tst-memory-tolerance-mib, or the test errors at teardown."""
    from ..memory import MemoryMonitor, check_memory, open_probe
    from ..models.resident import free_memory

    predictor = tst_model_cache.predictor(tst_model_name, tst_backend_name)
    with MemoryMonitor(open_probe(tst_gpus)) as monitor:
        monitor.begin(request.node.nodeid)
        yield predictor
        predictor.unload_adapter()
        free_memory()
        memory = monitor.end(request.node.nodeid)
        check = check_memory(
            {request.node.name: memory}, tst_settings.memory_tolerance_mib, subject="test", warmup_mib=0
        )
    if not check.ok:
        tst_model_cache.release(tst_model_name)  # the next user starts from a clean reload
        pytest.fail(
            f"the shared {tst_backend_name} predictor of {tst_model_name}: {check.message()}", pytrace=False
        )


@pytest.fixture
def tst_trainer(tst_model_cache, tst_model_name: str, tst_trainer_name: str, tst_backend_name: str):
    """The trainer under test (an LLMTrainerInterface: `train(data, output_dir, seed)` -> adapter),
    making adapters the backend under test serves and sharing the resident model; a pair that
    cannot run together (hf with rf) is skipped with the reason."""
    from ..registry import pairing_problem

    problem = pairing_problem(tst_backend_name, tst_trainer_name)
    if problem is not None:
        pytest.skip(f"{problem}; this pair cannot run (choose --tst-backend/--tst-trainer that can)")
    return tst_model_cache.trainer(tst_model_name, tst_trainer_name, tst_backend_name)


@pytest.fixture(scope="session")
def tst_ray(tst_session: TsTSession) -> Iterator[Any]:
    """A Ray runtime (`.address`, `.gpus`, `.cpus`, `.started`, `.joined`): --tst-ray-address
    joins a cluster and leaves it running; otherwise a private local one with --tst-gpus (logical
    on a CPU) and --tst-workers, removed at the end. Skipped without ray installed."""
    pytest.importorskip("ray", reason="needs ray (pip install 'tst-bench[ray]')")
    yield tst_session.ray()
    tst_session.stop_ray()


@pytest.fixture
def tst_runner(
    tst_session: TsTSession,
    tst_gpus,
    tst_grid_point: dict[str, Any] | None,
    request: pytest.FixtureRequest,
    tmp_path: Path,
):
    """Call it to run one k-fold TsT and record it: `run = tst_runner(dataset="my.jsonl", folds=3)`.
    Keywords are RunConfig's fields (dataset, model, backend, trainer, folds, repeats, seed, limit,
    zero_shot, device, executor, workers, predictor_options, trainer_options, ...); unset ones
    come from the --tst-* options. It returns a TsTRun: `run.result` is result.json's TsTResult
    (score, ci95, baselines.majority / .chance / .zero_shot, per-fold scores and timings),
    `run.samples` the per-sample results with s(x), `run.store.root` the run directory (under
    --tst-results, else the test's tmp_path), `run.assert_memory_released()` the per-fold memory
    check. Each run lands in the session's report (--tst-report; with or without `benchmark`), in
    pytest-benchmark's extra_info when the test uses `benchmark`, in a tst_record.json under
    --tst-results and in the terminal summary. `measures="memory"` (or a `leak_mib=`) keeps a
    run that measures something else than the dataset out of the report's verdict. With
    --tst-grid the test runs once per configuration of the grid, whose options replace the run's.
    """
    from .runner import TsTRunner

    def extra_info() -> dict[str, Any] | None:
        if "benchmark" in request.fixturenames:
            return request.getfixturevalue("benchmark").extra_info
        return None

    return TsTRunner(
        tst_session, tst_gpus, request.node.nodeid, request.node.name, tmp_path, extra_info, tst_grid_point
    )


@pytest.fixture(scope="session")
def tst_speedup_recorder(tst_session: TsTSession):
    """Seconds per worker/GPU count across the session's speedup benchmarks: `add(executor,
    count, seconds)` returns the curve so far (speedup relative to count 1 of that executor)."""
    return tst_session.speedup_recorder()
