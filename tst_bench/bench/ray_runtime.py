"""The Ray runtime of a test session, connected the way the CLI connects (tst_bench.cluster).

--tst-ray-address (or $RAY_ADDRESS) joins that cluster, shipping this tst_bench to its workers,
and leaves it running; otherwise a private local cluster is started, watched by the reaper (a
killed pytest leaves no Ray processes), with --tst-gpus logical GPUs (so Ray's GPU scheduling
works on a CPU machine) and enough CPUs for --tst-workers workers, and removed at the end. A Ray
connection the session already has is reused and left alone. `ray stop` is never used: it would
kill every Ray instance on the machine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..cluster.connection import ClusterLease, ClusterOptions, acquire
from .settings import TsTSettings

logger = logging.getLogger(__name__)


@dataclass
class RayRuntime:
    lease: ClusterLease
    address: str
    resources: Mapping[str, float] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        """A private local cluster this session started (and removes at the end)."""
        return self.lease.started_here

    @property
    def joined(self) -> bool:
        """An existing cluster (--tst-ray-address, $RAY_ADDRESS or a connection made before us)."""
        return not self.lease.started_here

    @property
    def gpus(self) -> float:
        return self.resources.get("GPU", 0.0)

    @property
    def cpus(self) -> float:
        return self.resources.get("CPU", 0.0)


def start_ray(settings: TsTSettings) -> RayRuntime:
    lease = acquire(cluster_options(settings))
    runtime = RayRuntime(lease, lease.address, lease.resources)
    logger.info(
        "Ray %s at %s with %s", "started" if runtime.started else "joined", runtime.address, runtime.resources
    )
    return runtime


def cluster_options(settings: TsTSettings) -> ClusterOptions:
    """The cluster to join, or the size of the local one: --tst-gpus GPUs (logical on a CPU
    machine; caps real GPUs otherwise) and a CPU for each of the most workers any test runs."""
    workers = max(settings.workers or 1, max(settings.speedup_counts))
    return ClusterOptions(settings.ray_address, settings.gpus, max(os.cpu_count() or 1, workers))


def stop_ray(runtime: RayRuntime) -> None:
    runtime.lease.release()
