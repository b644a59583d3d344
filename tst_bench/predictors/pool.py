"""A data-parallel pool of predictors on Ray workers (one per GPU, or per GPU share), any backend.

Each worker builds its own predictor inside its process from a picklable factory (a registry
backend, `RegisteredPredictor`, or any picklable callable such as a predictor class with its
config), so the driver never imports the engine. `predict` splits the instances into one
contiguous chunk per worker and joins the results in input order; `load_adapter` loads the
adapter on every worker (shipping its files to workers on other nodes); a failing worker is named
in the error and the pool is reset; `reset` kills the workers (their device memory goes with
them) and the next call starts fresh ones. Starting, deadlines and failures are the Ray layer's
`ActorPool` (tst_bench/cluster).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cluster.actors import (
    START_TIMEOUT_S,
    Actor,
    ActorPool,
    ActorWorker,
    WorkerSetup,
    model_on_this_node,
    split_evenly,
)
from ..cluster.connection import ClusterLease, ClusterOptions, acquire
from ..cluster.resources import check_worker_options, plan_workers
from ..config import RunConfig
from ..errors import InputError, TsTError, TsTRuntimeError
from ..models import ModelSource
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
    """A registry backend built inside the worker: `build(config, source)`, with the model as
    found on the worker's node (`build` is the registry's, passed by reference)."""

    build: Callable[[RunConfig, ModelSource], LLMPredictorInterface]
    config: RunConfig
    source: ModelSource

    def __call__(self) -> LLMPredictorInterface:
        return self.build(self.config, model_on_this_node(self.source))


@dataclass(kw_only=True)
class RayPredictorPoolConfig:
    """`num_workers` 0 means one per GPU share (GPUs x workers_per_gpu), else one per CPU."""

    num_workers: int = 0
    workers_per_gpu: int = 1
    transport: TransportName = DEFAULT_TRANSPORT
    ray_address: str | None = None
    num_gpus: int | None = None
    use_gpus: bool = True
    start_timeout_s: float = START_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise InputError(f"unknown transport {self.transport!r}; choose one of {TRANSPORTS}")
        check_worker_options(self.num_workers, self.workers_per_gpu, names=("num_workers", "workers_per_gpu"))


POOL_OPTIONS = frozenset(field.name for field in dataclasses.fields(RayPredictorPoolConfig))


class PredictorWorker(ActorWorker):
    """The body of one Ray actor: one predictor, fed chunks of instances."""

    def __init__(self, setup: WorkerSetup, factory: PredictorFactory, transport: Transport):
        super().__init__(setup)
        self.transport = transport
        self.predictor = factory()
        self.adapter_copies = Path(tempfile.mkdtemp(prefix="tst-bench-adapters-"))

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

    def release_device(self) -> None:
        self.predictor.release_device()


class RayPredictorPool(LLMPredictorInterface):
    #: The workers hold their models on the devices the trainer uses: each releases its memory
    #: (a vLLM engine sleeps or is torn down, an hf model is dropped) before training.
    owns_device_memory = True

    def __init__(self, factory: PredictorFactory, config: RayPredictorPoolConfig | None = None):
        self.factory = factory
        self.config = config or RayPredictorPoolConfig()
        self.current_adapter: Path | None = None
        self._lease: ClusterLease | None = None
        self._actors: ActorPool | None = None
        self._transport: Transport | None = None

    @property
    def workers(self) -> list[Actor]:
        return self._actors.actors if self._actors is not None else []

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    # --- workers ---------------------------------------------------------------------------

    def _ensure_workers(self) -> ActorPool:
        if self._actors is not None:
            return self._actors
        if self._lease is None:
            self._lease = acquire(ClusterOptions(self.config.ray_address, self.config.num_gpus))
        resources = plan_workers(self.config.num_workers, self.config.workers_per_gpu, self.config.use_gpus)
        self._transport = make_transport(self.config.transport)
        self._actors = ActorPool(
            PredictorWorker, (self.factory, self._transport), resources, self.config.start_timeout_s
        )
        try:
            self._actors.start()
            self._actors.wait_until_ready()
        except BaseException:
            self.reset()
            raise
        logger.info(
            "predictor pool: %d Ray worker(s), %s", resources.count, ", ".join(w.name for w in self.workers)
        )
        return self._actors

    def _gather(
        self, what: str, call: Callable[[Actor], Any], actors: Sequence[Actor] | None = None
    ) -> list[Any]:
        """One `call` per worker (default: all), results in order; a failure resets the pool."""
        pool = self._ensure_workers()
        try:
            return pool.gather(
                what, [(actor, call(actor)) for actor in (pool.actors if actors is None else actors)]
            )
        except TsTError:
            self.reset()
            raise

    # --- LLMPredictorInterface -------------------------------------------------------------

    def predict(self, instances: Sequence[TestInstance]) -> list[LLMPredictionResult]:
        if not instances:
            return []
        pool = self._ensure_workers()
        transport = self._transport
        assert transport is not None
        chunks = dict(zip(pool.actors, split_evenly(list(instances), len(pool.actors)), strict=True))
        busy = [actor for actor, chunk in chunks.items() if chunk]
        payloads = self._gather("predict", lambda a: a.handle.predict.remote(transport.send(chunks[a])), busy)
        return [result for payload in payloads for result in transport.receive_results(payload)]

    def load_adapter(self, adapter: AdapterRef) -> None:
        path = adapter_path(adapter)
        if not path.is_dir():
            raise TsTRuntimeError(f"adapter directory {path} does not exist")
        import ray

        pool = self._ensure_workers()
        here = ray.get_runtime_context().get_node_id()
        elsewhere = [a for a in pool.actors if a.info is not None and a.info.node_id != here]
        files_ref = ray.put(read_adapter_files(path)) if elsewhere else None
        if elsewhere:
            logger.info(
                "adapter %s: its files go to %s (another node)",
                path.name,
                ", ".join(a.name for a in elsewhere),
            )
        self._gather(
            f"load_adapter({path})",
            lambda a: a.handle.load_adapter.remote(str(path), files_ref if a in elsewhere else None),
        )
        self.current_adapter = path

    def unload_adapter(self) -> None:
        if self._actors is not None:
            self._gather("unload_adapter", lambda a: a.handle.unload_adapter.remote())
        self.current_adapter = None

    def release_device(self) -> None:
        """Every worker releases its device memory as its own backend does; the workers stay."""
        if self._actors is not None:
            self._gather("release_device", lambda a: a.handle.release_device.remote())
        self.current_adapter = None

    def reset(self) -> None:
        """Kill the workers: their processes, models and device memory go; the next call restarts."""
        if self._actors is not None:
            self._actors.kill_all()
            self._actors = None
        self.current_adapter = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def close(self) -> None:
        self.reset()
        if self._lease is not None:
            self._lease.release()
            self._lease = None


def read_adapter_files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def split_pool_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pool options, options for the predictor each worker builds)."""
    pool = {k: v for k, v in options.items() if k in POOL_OPTIONS}
    return pool, {k: v for k, v in options.items() if k not in POOL_OPTIONS}
