"""Folds spread over a pool of Ray workers, each training and scoring with its own resident model.

Every worker builds the same trainable predictor as the sequential executor
(`backends.build_trainable`) and keeps its base model loaded across the folds it runs. A fold's
seed comes from its FoldSpec, so which worker runs it, and after what, changes nothing in its
result. Small models pack several workers onto one GPU (`workers_per_gpu`: each asks Ray for
that fraction of a GPU). A worker that dies mid-fold is replaced and the fold runs again on
another worker; a fold that fails with an error inside Python stops the run. Results stream to
`on_result` (which persists them) as each fold finishes, so a killed driver loses only the folds
in flight.

Fold observers stay in the driver: `fold_started` when a fold is handed to a worker,
`fold_finished` when its result (or its failure) comes back. With several folds in flight, a
device-level observer (the NVML memory monitor) sees all of them at once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import build_trainable
from ..config import RunConfig
from ..errors import TsTError, TsTRuntimeError
from ..evaluator import FoldObserver, FoldObservers, LLMEvaluator
from ..folds import FoldSpec
from ..models import ModelSource, resolve_model
from ..ray_cluster import (
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
from ..schemas import FoldResult, LLMPredictionResult, QARecord
from .base import FoldCallback, FoldExecutor

logger = logging.getLogger(__name__)

#: Runs of one fold on workers that died under it before the run gives up.
MAX_FOLD_ATTEMPTS = 3
#: Seconds a worker may take to be placed and started before the run fails.
START_TIMEOUT_S = 600.0
POLL_S = 1.0


class FoldWorker:
    """The body of one Ray actor: a resident model that trains and scores the folds it is given."""

    def __init__(
        self,
        index: int,
        config: RunConfig,
        source: ModelSource,
        records: list[QARecord],
        torch_threads: int,
        log_level: int,
    ):
        setup_worker_process(torch_threads, log_level)
        self.info = describe_this_worker(index)
        if not source.path.is_dir():  # another node: resolve (build or fetch) the model here
            source = resolve_model(source.spec)
        self.evaluator = LLMEvaluator(
            build_trainable(config, source), records, config.seed, worker_name=self.info.name
        )

    def describe(self) -> WorkerInfo:
        return self.info

    def evaluate(self, spec: FoldSpec, adapter_dir: Path) -> FoldResult:
        return self.evaluator.evaluate_fold(spec, adapter_dir)

    def zero_shot(self) -> list[LLMPredictionResult]:
        return self.evaluator.zero_shot()


@dataclass
class _Worker:
    actor: Any
    index: int
    started: float
    info: WorkerInfo | None = None

    @property
    def name(self) -> str:
        return self.info.name if self.info else f"ray worker {self.index} (starting)"


@dataclass
class _Scheduler:
    """Bookkeeping of one `run`: folds waiting, calls in flight, idle workers, attempts per fold."""

    queue: deque[FoldSpec]
    idle: list[_Worker] = field(default_factory=list)
    starting: dict[Any, _Worker] = field(default_factory=dict)
    running: dict[Any, tuple[_Worker, FoldSpec]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.running)


class RayExecutor(FoldExecutor):
    def __init__(
        self,
        config: RunConfig,
        source: ModelSource,
        records: Sequence[QARecord],
        adapter_dir: Callable[[FoldSpec], Path],
        observers: Sequence[FoldObserver] = (),
    ):
        import ray

        self.config = config
        self.source = source
        self.adapter_dir = adapter_dir
        self.workers: list[_Worker] = []
        self._next_index = 0
        self.lease = acquire(ClusterOptions(config.ray_address, config.ray_gpus))
        try:
            self.resources: WorkerResources = plan_workers(
                config.workers, config.workers_per_gpu, use_gpus=config.device != "cpu"
            )
            logger.info(
                "%d Ray fold worker(s), each with %g CPU and %g GPU",
                self.resources.count,
                self.resources.num_cpus,
                self.resources.num_gpus,
            )
            self._actor_class = ray.remote(FoldWorker)
            self._records = ray.put(list(records))
            self._observers = FoldObservers(observers)
            for _ in range(self.resources.count):
                self._start_worker()
            self._wait_until_started(self.workers)
        except BaseException:
            self.close()
            raise

    # --- workers ---------------------------------------------------------------------------

    def _start_worker(self) -> _Worker:
        index, self._next_index = self._next_index, self._next_index + 1
        actor = self._actor_class.options(**self.resources.actor_options()).remote(
            index,
            self.config,
            self.source,
            self._records,
            self.resources.torch_threads,
            logging.getLogger("tst_bench").getEffectiveLevel(),
        )
        worker = _Worker(actor, index, time.monotonic())
        self.workers.append(worker)
        return worker

    def _wait_until_started(self, workers: list[_Worker]) -> None:
        import ray

        refs = {worker.actor.describe.remote(): worker for worker in workers}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            for ref in done:
                self._started(refs[ref], ref)
            self._check_start_deadline([refs[ref] for ref in pending])

    def _started(self, worker: _Worker, ref: Any) -> None:
        import ray

        try:
            worker.info = ray.get(ref)
        except Exception as error:
            raise TsTRuntimeError(f"{worker.name} failed to start: {failure_cause(error)}") from error
        logger.info("%s ready", worker.name)

    def _check_start_deadline(self, waiting: list[_Worker]) -> None:
        late = [w for w in waiting if time.monotonic() - w.started > START_TIMEOUT_S]
        if late:
            raise not_placed(late[0].name, START_TIMEOUT_S)

    def _replace(self, dead: _Worker) -> _Worker:
        """Drop a dead worker and start another in its place (Ray frees the dead one's share)."""
        kill_actors([dead.actor])
        self.workers.remove(dead)
        return self._start_worker()

    # --- FoldExecutor ----------------------------------------------------------------------

    def zero_shot(self) -> list[LLMPredictionResult]:
        """The base model's predictions, from one worker (so they equal the sequential run's)."""
        import ray

        for _attempt in range(MAX_FOLD_ATTEMPTS):
            worker = self.workers[0]
            try:
                return ray.get(worker.actor.zero_shot.remote())
            except Exception as error:
                if not worker_died(error):
                    raise self._fold_error("the zero-shot baseline", worker, error) from error
                logger.warning("%s died during the zero-shot baseline; starting another", worker.name)
                self._wait_until_started([self._replace(worker)])
        raise TsTRuntimeError(f"the zero-shot baseline failed: {MAX_FOLD_ATTEMPTS} workers died running it")

    def run(self, pending: Sequence[FoldSpec], on_result: FoldCallback) -> None:
        import ray

        state = _Scheduler(deque(pending), idle=[w for w in self.workers if w.info is not None])
        for worker in self.workers:
            if worker.info is None:
                state.starting[worker.actor.describe.remote()] = worker
        while state.busy:
            self._dispatch(state)
            refs = [*state.running, *state.starting]
            if not refs:
                raise TsTRuntimeError("no Ray worker is left to run the remaining folds")
            done, _ = ray.wait(refs, num_returns=1, timeout=POLL_S)
            for ref in done:
                if ref in state.starting:
                    worker = state.starting.pop(ref)
                    self._started(worker, ref)
                    state.idle.append(worker)
                else:
                    self._collect(state, ref, on_result)
            self._check_start_deadline(list(state.starting.values()))

    def _dispatch(self, state: _Scheduler) -> None:
        while state.queue and state.idle:
            worker, spec = state.idle.pop(0), state.queue.popleft()
            state.attempts[spec.key] = state.attempts.get(spec.key, 0) + 1
            self._observers.started(spec)
            ref = worker.actor.evaluate.remote(spec, self.adapter_dir(spec))
            state.running[ref] = (worker, spec)

    def _collect(self, state: _Scheduler, ref: Any, on_result: FoldCallback) -> None:
        import ray

        worker, spec = state.running.pop(ref)
        try:
            result = ray.get(ref)
        except Exception as error:
            self._observers.abandoned(spec)
            if not worker_died(error):
                raise self._fold_error(f"fold {spec.key}", worker, error) from error
            attempts = state.attempts[spec.key]
            if attempts >= MAX_FOLD_ATTEMPTS:
                raise TsTRuntimeError(
                    f"fold {spec.key}: {attempts} workers died running it, the last {worker.name}:"
                    f" {failure_cause(error)}"
                ) from error
            logger.warning(
                "%s died during fold %s (%s); running the fold again on another worker",
                worker.name,
                spec.key,
                type(error).__name__,
            )
            state.queue.appendleft(spec)
            replacement = self._replace(worker)
            state.starting[replacement.actor.describe.remote()] = replacement
            return
        state.idle.append(worker)
        on_result(self._observers.finished(spec, result))

    @staticmethod
    def _fold_error(what: str, worker: _Worker, error: BaseException) -> TsTError:
        cause = failure_cause(error)
        error_type = type(cause) if isinstance(cause, TsTError) else TsTRuntimeError
        return error_type(f"{what} failed on {worker.name}: {type(cause).__name__}: {cause}")

    def close(self) -> None:
        kill_actors([worker.actor for worker in self.workers])
        self.workers = []
        self.lease.release()
