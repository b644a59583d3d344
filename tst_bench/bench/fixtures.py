"""The plugin's fixtures. Heavy imports (torch, transformers, ray) happen inside them, on first use.

tst_settings          the resolved tst-bench options (session)
tst_gpus              CUDA GPUs this process may use, by UUID, capped by --tst-gpus (session)
tst_hardware          a description of the machine (session)
tst_memory_monitor    a MemoryMonitor over tst_gpus (NVML), or RSS with the reason
tst_dataset           the dataset under test (parametrized over --tst-dataset)
tst_model_cache       the session's predictors and trainers, built once per model (bench/model_cache.py)
tst_predictor         the session's predictor for the model under test: built once per model,
                      adapter dropped and memory checked after each user
tst_trainer           the trainer for the model under test, making adapters the backend under
                      test serves (shares the resident model); skipped for a pair that cannot run
tst_ray               a Ray runtime: local with --tst-gpus/--tst-workers resources, or joined
tst_runner            runs a k-fold TsT with the memory monitor and records everything
tst_speedup_recorder  seconds per worker/GPU count across a session's speedup benchmarks
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .recording import SessionRecords
from .settings import TsTSettings

SETTINGS_KEY = pytest.StashKey[TsTSettings]()
RECORDS_KEY = pytest.StashKey[SessionRecords]()


def settings_of(config: pytest.Config) -> TsTSettings:
    try:
        return config.stash[SETTINGS_KEY]
    except KeyError:
        raise pytest.UsageError(
            "the tst-bench pytest plugin is not active in this session (disabled with -p no:tst_bench?);"
            " these benchmarks need it"
        ) from None


@pytest.fixture(scope="session")
def tst_settings(pytestconfig: pytest.Config) -> TsTSettings:
    return settings_of(pytestconfig)


@pytest.fixture(scope="session")
def tst_gpus(tst_settings: TsTSettings) -> tuple[Any, ...]:
    from ..hardware import discover_gpus

    return discover_gpus()[: tst_settings.usable_gpus]


@pytest.fixture(scope="session")
def tst_hardware() -> dict[str, Any]:
    from ..hardware import describe_hardware

    return describe_hardware()


@pytest.fixture
def tst_memory_monitor(tst_gpus) -> Iterator[Any]:
    from ..memory import MemoryMonitor, open_probe

    with MemoryMonitor(open_probe(tst_gpus)) as monitor:
        yield monitor


# The names below are parametrized over the option lists by the plugin (pytest_generate_tests);
# these bodies are what a test gets when it parametrizes none of them itself.
@pytest.fixture
def tst_dataset_spec(tst_settings: TsTSettings) -> str:
    return tst_settings.datasets[0]


@pytest.fixture
def tst_model_name(tst_settings: TsTSettings) -> str:
    return tst_settings.models[0]


@pytest.fixture
def tst_backend_name(tst_settings: TsTSettings) -> str:
    return tst_settings.backends[0]


@pytest.fixture
def tst_trainer_name(tst_settings: TsTSettings) -> str:
    return tst_settings.trainers[0]


@pytest.fixture
def tst_dataset(tst_dataset_spec: str):
    from ..datasets import load_dataset

    return load_dataset(tst_dataset_spec)


@pytest.fixture(scope="session")
def tst_model_cache(tst_settings: TsTSettings) -> Iterator[Any]:
    from .model_cache import ModelCache

    cache = ModelCache(tst_settings)
    yield cache
    cache.close()


@pytest.fixture
def tst_predictor(
    tst_model_cache, tst_model_name: str, tst_backend_name: str, tst_settings, tst_gpus, request
):
    """The shared predictor; after the test its adapter is dropped and its memory must be back."""
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
    from ..registry import pairing_problem

    problem = pairing_problem(tst_backend_name, tst_trainer_name)
    if problem is not None:
        pytest.skip(f"{problem}; this pair cannot run (choose --tst-backend/--tst-trainer that can)")
    return tst_model_cache.trainer(tst_model_name, tst_trainer_name, tst_backend_name)


@pytest.fixture(scope="session")
def tst_ray(tst_settings: TsTSettings) -> Iterator[Any]:
    pytest.importorskip("ray", reason="needs ray (pip install 'tst-bench[ray]')")
    from .ray_runtime import start_ray, stop_ray

    runtime = start_ray(tst_settings)
    yield runtime
    stop_ray(runtime)


@pytest.fixture
def tst_runner(tst_settings: TsTSettings, tst_gpus, request: pytest.FixtureRequest, tmp_path: Path):
    from .runner import TsTRunner

    def extra_info() -> dict[str, Any] | None:
        if "benchmark" in request.fixturenames:
            return request.getfixturevalue("benchmark").extra_info
        return None

    return TsTRunner(
        tst_settings,
        tst_gpus,
        request.node.nodeid,
        tmp_path,
        request.config.stash[RECORDS_KEY],
        extra_info,
    )


@pytest.fixture(scope="session")
def tst_speedup_recorder(tst_settings: TsTSettings, pytestconfig: pytest.Config):
    from ..hardware import hardware_summary
    from .recording import SpeedupRecorder

    recorder = SpeedupRecorder(tst_settings.speedup_unit, hardware_summary())
    pytestconfig.stash[RECORDS_KEY].speedup = recorder
    return recorder
