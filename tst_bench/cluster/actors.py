"""One pool of Ray actors, used by the fold executor and by the data-parallel predictor pool.

An actor's body subclasses `ActorWorker` (which sets its process up and says where it runs).
`ActorPool` starts actors with the same resources, waits for them under a start deadline (a
worker Ray cannot place fails with what the cluster has free), tells a worker that died (killed,
crashed, node lost: `WorkerDied`) from a call that raised inside Python, replaces a dead worker,
and kills them all. Every error names the worker: node, host, pid and GPUs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..errors import TsTError, TsTRuntimeError
from ..models import ModelSource, resolve_model
from .resources import WorkerResources, not_placed

logger = logging.getLogger(__name__)

#: Seconds a worker may take to be placed and started before its pool fails.
START_TIMEOUT_S = 600.0
#: Seconds between checks of the start deadline while waiting on workers.
POLL_S = 1.0


class WorkerInfo(BaseModel):
    """Where a worker runs; `name` is what results and error messages show."""

    index: int
    node_id: str
    hostname: str
    pid: int
    gpu_ids: list[str] = []

    @property
    def name(self) -> str:
        gpus = f" gpu {','.join(self.gpu_ids)}" if self.gpu_ids else ""
        return f"ray worker {self.index} (node {self.node_id[:12]} on {self.hostname}, pid {self.pid}{gpus})"


@dataclass(frozen=True)
class WorkerSetup:
    """What every actor gets first: its index, its torch threads (its CPU share), the log level."""

    index: int
    torch_threads: int
    log_level: int


class ActorWorker:
    """Base of an actor's body: the process set up for its share, and `describe()`."""

    def __init__(self, setup: WorkerSetup):
        _setup_worker_process(setup.torch_threads, setup.log_level)
        self.info = _describe_this_worker(setup.index)

    def describe(self) -> WorkerInfo:
        return self.info


def model_on_this_node(source: ModelSource) -> ModelSource:
    """The model as the driver resolved it, or, on a node without those files, resolved here."""
    return source if source.path.is_dir() else resolve_model(source.spec)


def _describe_this_worker(index: int) -> WorkerInfo:
    import ray

    context = ray.get_runtime_context()
    return WorkerInfo(
        index=index,
        node_id=context.get_node_id(),
        hostname=socket.gethostname(),
        pid=os.getpid(),
        gpu_ids=[str(i) for i in context.get_accelerator_ids().get("GPU", [])],
    )


def _setup_worker_process(torch_threads: int, log_level: int) -> None:
    """Thread count for the worker's CPU share, the driver's log level, no progress bars."""
    import torch

    torch.set_num_threads(torch_threads)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tst_bench").setLevel(log_level)
    for noisy in ("transformers", "peft", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, log_level))
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


class WorkerDied(TsTRuntimeError):
    """The worker's process is gone (killed, crashed, node lost); a replacement may retry."""


@dataclass(eq=False)
class Actor:
    """One started actor: its handle, the pending `describe()` call, and its info once ready."""

    handle: Any
    index: int
    started_at: float
    ready: Any
    info: WorkerInfo | None = None

    @property
    def name(self) -> str:
        return self.info.name if self.info else f"ray worker {self.index} (starting)"


class ActorPool:
    """Actors of one `ActorWorker` class, all built with `args` and asking Ray for `resources`."""

    def __init__(
        self,
        body: type[ActorWorker],
        args: Sequence[Any],
        resources: WorkerResources,
        start_timeout_s: float = START_TIMEOUT_S,
    ):
        import ray

        # Ray types ActorClass.options as returning a plain function; it returns the actor class
        self._remote: Any = ray.remote(body).options(**resources.actor_options())
        self.args = tuple(args)
        self.resources = resources
        self.start_timeout_s = start_timeout_s
        self.actors: list[Actor] = []
        self._next_index = 0

    # --- starting ----------------------------------------------------------------------------

    def start(self, count: int | None = None) -> list[Actor]:
        """Start `count` actors (default: the planned count) without waiting for them."""
        return [self._start_one() for _ in range(self.resources.count if count is None else count)]

    def _start_one(self) -> Actor:
        index, self._next_index = self._next_index, self._next_index + 1
        setup = WorkerSetup(
            index, self.resources.torch_threads, logging.getLogger("tst_bench").getEffectiveLevel()
        )
        handle = self._remote.remote(setup, *self.args)
        actor = Actor(handle, index, time.monotonic(), handle.describe.remote())
        self.actors.append(actor)
        return actor

    @property
    def starting(self) -> list[Actor]:
        return [actor for actor in self.actors if actor.info is None]

    @property
    def ready(self) -> list[Actor]:
        return [actor for actor in self.actors if actor.info is not None]

    def wait_until_ready(self) -> None:
        """Block until every started actor is ready; fail on the first that cannot start."""
        while self.starting:
            self.wait_any([])

    def wait_any(self, refs: Sequence[Any]) -> tuple[list[Any], list[Actor]]:
        """Wait up to POLL_S for one of `refs` or a starting actor: (refs done, actors now ready).

        An actor that failed to start, or is not placed within the start deadline, fails the pool.
        """
        import ray

        starting = {actor.ready: actor for actor in self.starting}
        waiting = [*refs, *starting]
        done, _ = ray.wait(waiting, num_returns=1, timeout=POLL_S) if waiting else ([], [])
        now_ready = [self._confirm(starting[ref]) for ref in done if ref in starting]
        late = [a for a in self.starting if time.monotonic() - a.started_at > self.start_timeout_s]
        if late:
            raise not_placed(f"ray worker {late[0].index}", self.start_timeout_s)
        return [ref for ref in done if ref not in starting], now_ready

    def _confirm(self, actor: Actor) -> Actor:
        import ray

        try:
            actor.info = ray.get(actor.ready)
        except Exception as error:
            raise TsTRuntimeError(f"{actor.name} failed to start: {_cause(error)}") from error
        logger.info("%s ready", actor.name)
        return actor

    # --- results and failures ----------------------------------------------------------------

    def result(self, actor: Actor, ref: Any, what: str) -> Any:
        """The value of `actor`'s call `ref`; a failure raises an error naming the worker and
        `what` it was doing: WorkerDied if its process is gone, else the error type raised inside
        (a TsTError keeps its type, and so its exit code)."""
        import ray

        try:
            return ray.get(ref)
        except Exception as error:
            raise _failure(actor, what, error) from error

    def gather(self, what: str, calls: Sequence[tuple[Actor, Any]]) -> list[Any]:
        """The results of one call per actor, in order; the first failure is raised."""
        return [self.result(actor, ref, what) for actor, ref in calls]

    # --- replacing and stopping --------------------------------------------------------------

    def replace(self, dead: Actor) -> Actor:
        """Drop a dead actor and start another in its place (Ray frees the dead one's share)."""
        _kill(dead)
        self.actors.remove(dead)
        return self._start_one()

    def kill_all(self) -> None:
        """Kill every actor: its process, models and device memory go."""
        for actor in self.actors:
            _kill(actor)
        self.actors = []


def _kill(actor: Actor) -> None:
    import ray

    with contextlib.suppress(Exception):
        ray.kill(actor.handle, no_restart=True)


def _failure(actor: Actor, what: str, error: BaseException) -> TsTError:
    from ray import exceptions

    died = isinstance(
        error, (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.NodeDiedError)
    )
    cause = _cause(error)
    message = f"{actor.name} {'died' if died else 'failed'} during {what}: {type(cause).__name__}: {cause}"
    if died:
        return WorkerDied(message)
    return (type(cause) if isinstance(cause, TsTError) else TsTRuntimeError)(message)


def _cause(error: BaseException) -> BaseException:
    """The exception raised inside the worker, unwrapped from Ray's RayTaskError."""
    from ray.exceptions import RayTaskError

    if isinstance(error, RayTaskError) and error.cause is not None:
        return error.cause
    return error


def split_evenly(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """`parts` contiguous chunks whose sizes differ by at most one (the first ones are longer)."""
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        chunks.append(list(items[start:end]))
        start = end
    return chunks
