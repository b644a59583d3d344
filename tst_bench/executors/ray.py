"""Folds spread over a pool of Ray workers, each training and scoring with its own resident model.

Every worker builds the same trainable predictor as the sequential executor
(`backends.build_trainable`) and keeps its base model loaded across the folds it runs. A fold's
seed comes from its FoldSpec, so which worker runs it, and after what, changes nothing in its
result. Small models pack several workers onto one GPU (`workers_per_gpu`: each asks Ray for
that fraction of a GPU).

The unit of dispatch is a group of folds, one training pass (`executors.base.training_passes`):
one fold per call, unless the workers' trainer trains several folds' adapters in one pass
(`folds_per_pass`), in which case the pending folds are split into at least one group per worker.
A worker that dies mid-group is replaced and its whole group runs again on another worker; a fold
that fails with an error inside Python stops the run.
Results stream to `on_result` (which persists them) fold by fold as each group finishes, so a
killed driver loses only the groups in flight.

Fold observers stay in the driver: `pass_started` and `fold_started` when a group is handed to a worker,
`fold_finished` when its result (or its failure) comes back. With several folds in flight, a
device-level observer (the NVML memory monitor) sees all of them at once.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import build_trainable
from ..cluster.actors import (
    Actor,
    ActorPool,
    ActorWorker,
    WorkerDied,
    WorkerSetup,
    model_on_this_node,
)
from ..cluster.connection import ClusterOptions, acquire
from ..cluster.resources import plan_workers
from ..config import RunConfig
from ..errors import TsTRuntimeError
from ..evaluator import FoldObserver, FoldObservers, LLMEvaluator
from ..folds import FoldSpec
from ..models import ModelSource
from ..schemas import FoldResult, QARecord, ZeroShotPass
from .base import FoldCallback, FoldExecutor, FoldGroup, training_passes

logger = logging.getLogger(__name__)

#: Runs of one group of folds on workers that died under it before the run gives up.
MAX_ATTEMPTS = 3


#: Measured on one H100 80 GB (random-qwen2-0.5b, Video-MME dev, 4 folds, `--backend vllm
#: --trainer peft`): the sequential executor trained the 4 folds in one pass in 127 s; 2 Ray workers
#: sharing the GPU (`--workers 2 --workers-per-gpu 2`), each training its 2 folds together, took 162 s.
PACKED_WORKERS_MEASURED = "127 s sequential vs 162 s with 2 workers on one H100 (0.5B shape, 4 folds)"


def warn_if_packed_workers_batch_folds(gpus_per_worker: float, folds_per_pass: int | None) -> None:
    """Workers sharing a GPU pay off when each trains one fold at a time (the GPU is idle between a
    fold's small steps); a trainer that already trains folds together fills the GPU on its own, and
    packed workers then only add model copies and contention."""
    if 0 < gpus_per_worker < 1 and folds_per_pass != 1:
        logger.warning(
            "%d fold workers share each GPU, but the trainer already trains folds together in one pass:"
            " the workers take turns on the GPU, each with its own copy of the model (measured: %s)."
            " One worker per GPU (--workers-per-gpu 1) or --executor sequential is faster here;"
            " --trainer-option fold_batching=false trains one fold at a time instead.",
            round(1 / gpus_per_worker),
            PACKED_WORKERS_MEASURED,
        )


class FoldWorker(ActorWorker):
    """The body of one Ray actor: a resident model that trains and scores the folds it is given."""

    def __init__(self, setup: WorkerSetup, config: RunConfig, source: ModelSource, records: list[QARecord]):
        super().__init__(setup)
        trainable = build_trainable(config, model_on_this_node(source))
        self.evaluator = LLMEvaluator(trainable, records, config.seed, worker_name=self.info.name)

    def folds_per_pass(self) -> int | None:
        return self.evaluator.trainable.trainer.folds_per_pass

    def evaluate(self, group: FoldGroup, adapter_dirs: list[Path]) -> list[FoldResult]:
        """One group's results, in the group's order (the evaluator's fold contract)."""
        directories = dict(zip((spec.key for spec in group), adapter_dirs, strict=True))
        results: list[FoldResult] = []
        self.evaluator.evaluate_group(group, lambda spec: directories[spec.key], results.append)
        return results

    def zero_shot(self) -> ZeroShotPass:
        return self.evaluator.zero_shot()


@dataclass
class _Scheduler:
    """Bookkeeping of one `run`: groups waiting, calls in flight, idle workers, attempts per group."""

    queue: deque[FoldGroup]
    idle: list[Actor]
    running: dict[Any, tuple[Actor, FoldGroup]] = field(default_factory=dict)
    attempts: Counter[FoldGroup] = field(default_factory=Counter)

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

        self.adapter_dir = adapter_dir
        self._observers = FoldObservers(observers)
        self.lease = acquire(ClusterOptions(config.ray_address, config.ray_gpus))
        self.pool: ActorPool | None = None
        try:
            resources = plan_workers(config.workers, config.workers_per_gpu, use_gpus=config.device != "cpu")
            logger.info(
                "%d Ray fold worker(s), each with %g CPU and %g GPU",
                resources.count,
                resources.num_cpus,
                resources.num_gpus,
            )
            self.pool = ActorPool(FoldWorker, (config, source, ray.put(list(records))), resources)
            self.pool.start()
            self.pool.wait_until_ready()
            first = self.pool.actors[0]
            self.folds_per_pass: int | None = self.pool.result(
                first, first.handle.folds_per_pass.remote(), "a capability query"
            )
            warn_if_packed_workers_batch_folds(resources.num_gpus, self.folds_per_pass)
        except BaseException:
            self.close()
            raise

    # --- FoldExecutor ----------------------------------------------------------------------

    def zero_shot(self) -> ZeroShotPass:
        """The base model's predictions, from one worker (so they equal the sequential run's)."""
        pool = self._pool
        for _attempt in range(MAX_ATTEMPTS):
            worker = pool.ready[0]
            try:
                return pool.result(worker, worker.handle.zero_shot.remote(), "the zero-shot baseline")
            except WorkerDied as died:
                logger.warning("%s; starting another worker", died)
                pool.replace(worker)
                pool.wait_until_ready()
        raise TsTRuntimeError(f"the zero-shot baseline failed: {MAX_ATTEMPTS} workers died running it")

    def run(self, pending: Sequence[FoldSpec], on_result: FoldCallback) -> None:
        pool = self._pool
        groups = training_passes(pending, self.folds_per_pass, parts=len(pool.actors))
        state = _Scheduler(deque(groups), idle=pool.ready)
        while state.busy:
            self._dispatch(state)
            if not state.running and not pool.starting:
                raise TsTRuntimeError("no Ray worker is left to run the remaining folds")
            done, now_ready = pool.wait_any(list(state.running))
            state.idle.extend(now_ready)
            for ref in done:
                self._collect(state, ref, on_result)

    def _dispatch(self, state: _Scheduler) -> None:
        while state.queue and state.idle:
            worker, group = state.idle.pop(0), state.queue.popleft()
            state.attempts[group] += 1
            self._observers.started(group)
            ref = worker.handle.evaluate.remote(group, [self.adapter_dir(spec) for spec in group])
            state.running[ref] = (worker, group)

    def _collect(self, state: _Scheduler, ref: Any, on_result: FoldCallback) -> None:
        worker, group = state.running.pop(ref)
        what = f"fold {group[0].key}" if len(group) == 1 else f"folds {', '.join(s.key for s in group)}"
        try:
            results = self._pool.result(worker, ref, what)
        except WorkerDied as died:
            for spec in group:
                self._observers.abandoned(spec)
            if state.attempts[group] >= MAX_ATTEMPTS:
                raise TsTRuntimeError(
                    f"{what}: {MAX_ATTEMPTS} workers died running it, the last: {died}"
                ) from died
            logger.warning("%s; running it again on another worker", died)
            state.queue.appendleft(group)
            self._pool.replace(worker)
            return
        except BaseException:
            for spec in group:
                self._observers.abandoned(spec)
            raise
        state.idle.append(worker)
        for spec, result in zip(group, results, strict=True):
            on_result(self._observers.finished(spec, result))

    @property
    def _pool(self) -> ActorPool:
        if self.pool is None:
            raise TsTRuntimeError("the Ray executor is closed")
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.kill_all()
            self.pool = None
        self.lease.release()
