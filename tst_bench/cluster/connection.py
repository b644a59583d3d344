"""Connecting to Ray: join a cluster (shipping this tst_bench to it) or start a private one.

Every user in this process (a CLI run's executor or predictor pool, the pytest `tst_ray`
fixture) goes through `acquire`, so Ray is started or joined one way everywhere.
`ClusterOptions.address` ("auto", "HOST:PORT", or $RAY_ADDRESS) joins an existing cluster, sends
it this tst_bench (its nodes need only the dependencies) and only disconnects from it at the end;
without one, a local cluster is started, watched by `reaper` (so a driver killed outright leaves
no Ray processes behind) and shut down when the last user in this process releases it. We never
stop what we did not start, and never run `ray stop` (it kills every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, TsTRuntimeError
from . import reaper
from .resources import resource_summary

logger = logging.getLogger(__name__)

#: Set unless the user set them: no usage reporting, no token auth on a private local cluster.
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
#: The package a joined cluster's workers receive.
SHIPPED_PACKAGE = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ClusterOptions:
    """Where Ray workers run. `num_gpus`/`num_cpus` size a cluster we start (logical GPUs on CPU)."""

    address: str | None = None
    num_gpus: int | None = None
    num_cpus: int | None = None

    @property
    def joined_address(self) -> str | None:
        return self.address or os.environ.get("RAY_ADDRESS") or None


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
    """One user's hold on the Ray connection; `release()` (or leaving the `with`) gives it back.

    `started_here`: the cluster is a private one this process started (and will remove);
    otherwise it was joined, or Ray was connected before us, and is left running.
    """

    def __init__(self, started_here: bool):
        self.started_here = started_here
        self._released = False

    @property
    def address(self) -> str:
        import ray

        return ray.get_runtime_context().gcs_address

    @property
    def resources(self) -> Mapping[str, float]:
        import ray

        return ray.cluster_resources()

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
    address = options.joined_address
    try:
        if address:
            check_address(address)
            _check_reachable(address)
            logger.info("joining the Ray cluster at %s", address)
            ray.init(address=address, runtime_env=shipped_code(), log_to_driver=True)
        else:
            context = ray.init(
                address="local",
                num_gpus=options.num_gpus,
                num_cpus=options.num_cpus,
                include_dashboard=False,
                log_to_driver=True,
            )
            # ray.init is typed as returning BaseContext; a local start returns a RayContext
            session_dir: str = context.address_info["session_dir"]  # pyright: ignore[reportAttributeAccessIssue]
            _Connection.session_dir = session_dir
            _Connection.reaper = _start_reaper(session_dir)
            logger.info("started a local Ray cluster: %s", resource_summary(ray.cluster_resources()))
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise TsTRuntimeError(
            f"cannot start or join Ray ({address or 'a local cluster'}): {error}"
        ) from error
    _Connection.connected_by_us = True


def shipped_code() -> dict[str, Any]:
    """The runtime environment of a joined cluster's workers: this tst_bench, so their nodes need
    only the dependencies (and run the driver's code, not whatever tst_bench they have)."""
    return {"py_modules": [str(SHIPPED_PACKAGE)]}


def _start_reaper(session_dir: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", reaper.__name__, str(os.getpid()), session_dir],
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
        watcher, _Connection.reaper = _Connection.reaper, None
        _Connection.session_dir = None
        if watcher is not None:
            assert watcher.stdin is not None  # the reaper is started with a pipe on stdin
            with contextlib.suppress(OSError):
                watcher.stdin.close()
            try:
                watcher.wait(timeout=10)
            except subprocess.TimeoutExpired:
                watcher.kill()
                watcher.wait()
