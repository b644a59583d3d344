"""A data-parallel pool of predictors on Ray workers (one per GPU, or per GPU share), any backend.

Each worker builds its own predictor inside its process from a picklable factory (a registry
backend name, or a predictor class path plus its config), so the driver never imports the engine.
`predict` splits the instances into one contiguous chunk per worker and joins the results in
input order; `load_adapter` loads the adapter on every worker (shipping its files to workers on
other nodes); a failing worker is named in the TsTRuntimeError; `reset` kills the workers (their
device memory goes with them) and the next call starts new ones.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import InputError, TsTRuntimeError
from ..models import ModelSource, resolve_model
from ..ray_cluster import (
    ClusterLease,
    ClusterOptions,
    WorkerInfo,
    WorkerResources,
    acquire,
    describe_this_worker,
    failure_cause,
    kill_actors,
    not_placed,
    plan_workers,
    setup_worker_process,
    worker_died,
)
from ..schemas import LLMPredictionResult, TestInstance
from .base import AdapterRef, LLMPredictorInterface, adapter_path
from .transport import TRANSPORTS, Transport, TransportName, make_transport

logger = logging.getLogger(__name__)

PredictorFactory = Callable[[], LLMPredictorInterface]
#: The fastest in benchmarks/test_ray_transport.py (20k instances, 2 workers, 2-core CPU): JSON
#: bytes through the object store beat files by ~1.3x and pickled objects by ~1.5x.
DEFAULT_TRANSPORT: TransportName = "object_store"


@dataclass(frozen=True)
class RegisteredPredictor:
    """Builds registry backend `backend` for `config` inside the worker."""

    backend: str
    config: RunConfig
    source: ModelSource

    def __call__(self) -> LLMPredictorInterface:
        from ..backends import BackendContext, build_predictor

        source = self.source if self.source.path.is_dir() else resolve_model(self.source.spec)
        return build_predictor(BackendContext(dataclasses.replace(self.config, backend=self.backend), source))


@dataclass(frozen=True)
class ConfiguredPredictor:
    """Builds `module.class_name(config)` inside the worker: the engine is imported there only."""

    module: str
    class_name: str
    config: Any

    def __call__(self) -> LLMPredictorInterface:
        predictor_class = getattr(importlib.import_module(self.module), self.class_name)
        return predictor_class(self.config)


@dataclass(kw_only=True)
class RayPredictorPoolConfig:
    """`num_workers` 0 means one per GPU share (GPUs x workers_per_gpu), else one per CPU."""

    num_workers: int = 0
    workers_per_gpu: int = 1
    transport: TransportName = DEFAULT_TRANSPORT
    ray_address: str | None = None
    num_gpus: int | None = None
    use_gpus: bool = True
    start_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise InputError(f"unknown transport {self.transport!r}; choose one of {TRANSPORTS}")
        if self.num_workers < 0:
            raise InputError(f"num_workers must be 0 (one per GPU) or more, got {self.num_workers}")
        if self.workers_per_gpu < 1:
            raise InputError(f"workers_per_gpu must be at least 1, got {self.workers_per_gpu}")


POOL_OPTIONS = frozenset(field.name for field in dataclasses.fields(RayPredictorPoolConfig))


class PredictorWorker:
    """The body of one Ray actor: one predictor, fed chunks of instances."""

    def __init__(
        self, index: int, factory: PredictorFactory, transport: Transport, torch_threads: int, log_level: int
    ):
        setup_worker_process(torch_threads, log_level)
        self.info = describe_this_worker(index)
        self.transport = transport
        self.predictor = factory()
        self.adapter_copies = Path(tempfile.mkdtemp(prefix="tst-bench-adapters-"))

    def describe(self) -> WorkerInfo:
        return self.info

    def predict(self, payload: Any) -> Any:
        instances = self.transport.receive_instances(payload)
        return self.transport.send_results(payload, self.predictor.predict(instances))

    def load_adapter(self, path: str, files: dict[str, bytes] | None) -> None:
        """Load from `path`, or from `files` written here when the adapter lives on another node."""
        if files is not None:
            target = self.adapter_copies / Path(path).name
            shutil.rmtree(target, ignore_errors=True)
            for name, content in files.items():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                (target / name).write_bytes(content)
            path = str(target)
        self.predictor.load_adapter(path)

    def unload_adapter(self) -> None:
        self.predictor.unload_adapter()


@dataclass
class _PoolWorker:
    actor: Any
    info: WorkerInfo


class RayPredictorPool(LLMPredictorInterface):
    def __init__(self, factory: PredictorFactory, config: RayPredictorPoolConfig | None = None):
        self.factory = factory
        self.config = config or RayPredictorPoolConfig()
        self.workers: list[_PoolWorker] = []
        self.current_adapter: Path | None = None
        self._lease: ClusterLease | None = None
        self._transport: Transport | None = None

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    # --- workers ---------------------------------------------------------------------------

    def _ensure_workers(self) -> list[_PoolWorker]:
        if self.workers:
            return self.workers
        import ray

        if self._lease is None:
            self._lease = acquire(ClusterOptions(self.config.ray_address, self.config.num_gpus))
        resources: WorkerResources = plan_workers(
            self.config.num_workers, self.config.workers_per_gpu, self.config.use_gpus
        )
        self._transport = make_transport(self.config.transport)
        actor_class = ray.remote(PredictorWorker).options(**resources.actor_options())
        log_level = logging.getLogger("tst_bench").getEffectiveLevel()
        actors = [
            actor_class.remote(i, self.factory, self._transport, resources.torch_threads, log_level)
            for i in range(resources.count)
        ]
        try:
            infos = self._gather(
                "start", [(i, a.describe.remote()) for i, a in enumerate(actors)], self.config.start_timeout_s
            )
        except BaseException:
            kill_actors(actors)
            raise
        self.workers = [_PoolWorker(actor, info) for actor, info in zip(actors, infos)]
        logger.info(
            "predictor pool: %d Ray worker(s), %s", len(actors), ", ".join(w.info.name for w in self.workers)
        )
        return self.workers

    def _gather(self, what: str, calls: list[tuple[int, Any]], timeout_s: float | None = None) -> list[Any]:
        """Results of one call per worker, in order; the first failure names its worker."""
        import ray
        from ray.exceptions import GetTimeoutError

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        results = []
        for index, ref in calls:
            try:
                results.append(
                    ray.get(ref, timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
                )
            except GetTimeoutError:
                self.reset()
                raise not_placed(f"ray worker {index}", timeout_s or 0.0) from None
            except Exception as error:
                name = self.workers[index].info.name if index < len(self.workers) else f"ray worker {index}"
                verb = "died" if worker_died(error) else "failed"
                cause = failure_cause(error)
                self.reset()
                raise TsTRuntimeError(
                    f"predictor pool: {name} {verb} during {what}: {type(cause).__name__}: {cause}"
                ) from error
        return results

    # --- LLMPredictorInterface -------------------------------------------------------------

    def predict(self, instances: Sequence[TestInstance]) -> list[LLMPredictionResult]:
        if not instances:
            return []
        workers = self._ensure_workers()
        transport = self._transport
        assert transport is not None
        chunks = split_evenly(list(instances), len(workers))
        calls = [
            (i, w.actor.predict.remote(transport.send(chunk)))
            for i, (w, chunk) in enumerate(zip(workers, chunks))
            if chunk
        ]
        results: list[LLMPredictionResult] = []
        for payload in self._gather("predict", calls):
            results.extend(transport.receive_results(payload))
        return results

    def load_adapter(self, adapter: AdapterRef) -> None:
        path = adapter_path(adapter)
        if not path.is_dir():
            raise TsTRuntimeError(f"adapter directory {path} does not exist")
        import ray

        workers = self._ensure_workers()
        here = ray.get_runtime_context().get_node_id()
        files_ref = None
        elsewhere = [w.info.name for w in workers if w.info.node_id != here]
        if elsewhere:
            files_ref = ray.put(read_adapter_files(path))
            logger.info("adapter %s: its files go to %s (another node)", path.name, ", ".join(elsewhere))
        calls = [
            (i, w.actor.load_adapter.remote(str(path), None if w.info.node_id == here else files_ref))
            for i, w in enumerate(workers)
        ]
        self._gather(f"load_adapter({path})", calls)
        self.current_adapter = path

    def unload_adapter(self) -> None:
        if self.workers:
            self._gather(
                "unload_adapter",
                [(i, w.actor.unload_adapter.remote()) for i, w in enumerate(self.workers)],
            )
        self.current_adapter = None

    def reset(self) -> None:
        """Kill the workers: their processes, models and device memory go; the next call restarts."""
        kill_actors([w.actor for w in self.workers])
        self.workers = []
        self.current_adapter = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def close(self) -> None:
        self.reset()
        if self._lease is not None:
            self._lease.release()
            self._lease = None


def split_evenly(items: list[Any], parts: int) -> list[list[Any]]:
    """`parts` contiguous chunks whose sizes differ by at most one (the first ones are longer)."""
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks


def read_adapter_files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def split_pool_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pool options, options for the predictor each worker builds)."""
    pool = {k: v for k, v in options.items() if k in POOL_OPTIONS}
    return pool, {k: v for k, v in options.items() if k not in POOL_OPTIONS}
