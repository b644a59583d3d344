"""Ray for tst-bench: join a cluster or start a private one, size workers, name them, read failures.

`ClusterOptions.address` ("auto", "HOST:PORT", or $RAY_ADDRESS) joins an existing cluster and
only disconnects from it at the end; without one, a local cluster is started and shut down when
the last user in this process releases it. We never stop what we did not start (and never run
`ray stop`, which kills every Ray on the machine). A local cluster is watched by
`tst_bench.ray_reaper`, so a driver killed outright leaves no Ray processes behind.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .errors import InputError, TsTRuntimeError

logger = logging.getLogger(__name__)

#: Set unless the user set them: no usage reporting, no token auth on a private local cluster.
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@dataclass(frozen=True)
class ClusterOptions:
    """Where Ray workers run. `num_gpus`/`num_cpus` size a cluster we start (logical GPUs on CPU)."""

    address: str | None = None
    num_gpus: int | None = None
    num_cpus: int | None = None

    @property
    def joins(self) -> bool:
        return bool(self.address or os.environ.get("RAY_ADDRESS"))


def check_address(address: str | None) -> None:
    """An InputError unless `address` is None, "auto", HOST:PORT or a ray:// client address."""
    if address is None or address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray-address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast: Ray itself keeps retrying an address where nothing listens."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise TsTRuntimeError(f"no Ray cluster answers at {address}: {error}") from None


def require_ray(what: str) -> None:
    """An InputError naming the install step when Ray is missing."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise InputError(f"{what} needs Ray: pip install 'tst-bench[ray]'")


class _Connection:
    """Process-wide: who connected Ray, whether we started the cluster, how many users hold it."""

    lock = threading.Lock()
    users = 0
    connected_by_us = False
    reaper: subprocess.Popen | None = None
    session_dir: str | None = None


class ClusterLease:
    """One user's hold on the Ray connection; `release()` (or leaving the `with`) gives it back."""

    def __init__(self, started_here: bool):
        self.started_here = started_here
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        _release()

    def __enter__(self) -> ClusterLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def acquire(options: ClusterOptions) -> ClusterLease:
    """Connect (join or start) unless this process is already connected; count the user."""
    import ray

    with _Connection.lock:
        if not ray.is_initialized():
            _connect(options)
        elif _Connection.users == 0 and not _Connection.connected_by_us:
            logger.info("using the Ray connection this process already has")
        _Connection.users += 1
        return ClusterLease(started_here=_Connection.reaper is not None)


def _connect(options: ClusterOptions) -> None:
    import ray

    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    try:
        if options.joins:
            address = options.address or os.environ["RAY_ADDRESS"]
            check_address(address)
            _check_reachable(address)
            logger.info("joining the Ray cluster at %s", address)
            ray.init(address=address, runtime_env=_shipped_code(), log_to_driver=True)
        else:
            context = ray.init(
                address="local",
                num_gpus=options.num_gpus,
                num_cpus=options.num_cpus,
                include_dashboard=False,
                log_to_driver=True,
            )
            _Connection.session_dir = context.address_info["session_dir"]
            _Connection.reaper = _start_reaper(_Connection.session_dir)
            logger.info("started a local Ray cluster: %s", _resource_summary(ray.cluster_resources()))
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = options.address or os.environ.get("RAY_ADDRESS") or "a local cluster"
        raise TsTRuntimeError(f"cannot start or join Ray ({where}): {error}") from error
    _Connection.connected_by_us = True


def _shipped_code() -> dict[str, Any]:
    """Send this tst_bench to the cluster's workers, so its nodes need only the dependencies."""
    return {"py_modules": [str(Path(__file__).resolve().parent)]}


def _start_reaper(session_dir: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tst_bench.ray_reaper", str(os.getpid()), session_dir],
        stdin=subprocess.PIPE,
        start_new_session=True,  # a terminal's Ctrl-C goes to the driver, which cleans up itself
    )


def _release() -> None:
    import ray

    with _Connection.lock:
        _Connection.users = max(0, _Connection.users - 1)
        if _Connection.users or not _Connection.connected_by_us:
            return
        _Connection.connected_by_us = False
        ray.shutdown()
        reaper, _Connection.reaper = _Connection.reaper, None
        if reaper is not None:
            with contextlib.suppress(OSError):
                reaper.stdin.close()  # type: ignore[union-attr]
            try:
                reaper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                reaper.kill()
                reaper.wait()


def local_session_dir() -> str | None:
    """The session directory of the cluster this process started, if it started one."""
    return _Connection.session_dir if _Connection.reaper is not None else None


# --- sizing workers ----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerResources:
    """What each worker asks Ray for; a GPU worker asks for 1/workers_per_gpu of a GPU."""

    count: int
    num_cpus: float
    num_gpus: float

    @property
    def torch_threads(self) -> int:
        return max(1, math.floor(self.num_cpus))

    def actor_options(self) -> dict[str, Any]:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "scheduling_strategy": "SPREAD"}


def plan_workers(requested: int, workers_per_gpu: int = 1, use_gpus: bool = True) -> WorkerResources:
    """How many workers (0 = fill the cluster) and their share of it; fails if they cannot fit."""
    import ray

    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    if workers_per_gpu < 1:
        raise TsTRuntimeError(f"workers per GPU must be at least 1, got {workers_per_gpu}")
    if use_gpus and gpus > 0:
        capacity = int(gpus * workers_per_gpu + 1e-9)
        count = requested or capacity
        if count > capacity:
            raise TsTRuntimeError(
                f"{count} workers at {workers_per_gpu} per GPU need {math.ceil(count / workers_per_gpu)}"
                f" GPU(s); the Ray cluster has {gpus:g} ({_resource_summary(resources)})"
            )
        return WorkerResources(count, _share(min(1.0, cpus / count)), 1.0 / workers_per_gpu)
    count = requested or max(1, int(cpus))
    if cpus < 0.01 * count:
        raise TsTRuntimeError(
            f"the Ray cluster has no CPUs for {count} worker(s) ({_resource_summary(resources)})"
        )
    return WorkerResources(count, _share(cpus / count), 0.0)


def not_placed(name: str, waited_s: float) -> TsTRuntimeError:
    """The error for a worker Ray could not place (its share is taken or the cluster is too small)."""
    import ray

    free = _resource_summary(ray.available_resources())
    return TsTRuntimeError(
        f"{name} was not placed within {waited_s:.0f}s: the Ray cluster has {free} free"
        f" of {_resource_summary(ray.cluster_resources())} (another job or pool may hold the rest)"
    )


def _share(value: float) -> float:
    return math.floor(value * 100) / 100


def _resource_summary(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(name, 0):g} {name}" for name in ("CPU", "GPU"))


# --- naming workers and reading their failures --------------------------------------------


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


def describe_this_worker(index: int) -> WorkerInfo:
    """Called inside an actor."""
    import ray

    context = ray.get_runtime_context()
    return WorkerInfo(
        index=index,
        node_id=context.get_node_id(),
        hostname=socket.gethostname(),
        pid=os.getpid(),
        gpu_ids=[str(i) for i in context.get_accelerator_ids().get("GPU", [])],
    )


def setup_worker_process(torch_threads: int, log_level: int) -> None:
    """Inside an actor: thread count for its CPU share, the driver's log level, no progress bars."""
    import torch

    torch.set_num_threads(torch_threads)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tst_bench").setLevel(log_level)
    for noisy in ("transformers", "peft", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, log_level))
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def worker_died(error: BaseException) -> bool:
    """True when the worker process itself is gone (killed, crashed, node lost), not a Python error."""
    from ray import exceptions

    return isinstance(
        error,
        (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.NodeDiedError),
    )


def failure_cause(error: BaseException) -> BaseException:
    """The exception raised inside the worker, unwrapped from Ray's RayTaskError."""
    from ray.exceptions import RayTaskError

    if isinstance(error, RayTaskError) and error.cause is not None:
        return error.cause
    return error


def kill_actors(actors: list[Any]) -> None:
    import ray

    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
