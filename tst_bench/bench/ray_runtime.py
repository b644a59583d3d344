"""The Ray runtime for a test session: start a local one, join a cluster, or reuse one already up.

A local runtime declares --tst-gpus logical GPUs (so Ray's GPU scheduling works on a CPU machine)
and enough CPUs for --tst-workers workers. Only a runtime this module started or joined is shut
down at the end (for a joined cluster, `ray.shutdown` only disconnects); `ray stop` is never used,
it would kill every Ray instance on the machine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from .settings import TsTSettings

logger = logging.getLogger(__name__)


@dataclass
class RayRuntime:
    address: str
    started: bool  # this fixture called ray.init (and so shuts it down)
    joined: bool  # an existing cluster (--tst-ray-address / RAY_ADDRESS) rather than a local instance
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def gpus(self) -> float:
        return self.resources.get("GPU", 0.0)

    @property
    def cpus(self) -> float:
        return self.resources.get("CPU", 0.0)


def start_ray(settings: TsTSettings) -> RayRuntime:
    import ray

    if ray.is_initialized():
        context = ray.get_runtime_context()
        return RayRuntime(context.gcs_address, started=False, joined=True, resources=ray.cluster_resources())
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(**local_resources(settings), include_dashboard=False, log_to_driver=False)
    context = ray.get_runtime_context()
    runtime = RayRuntime(
        context.gcs_address, started=True, joined=bool(address), resources=ray.cluster_resources()
    )
    logger.info(
        "Ray %s at %s with %s", "joined" if address else "started", runtime.address, runtime.resources
    )
    return runtime


def local_resources(settings: TsTSettings) -> dict[str, Any]:
    workers = max(settings.workers or 1, max(settings.speedup_counts))
    resources: dict[str, Any] = {"num_cpus": max(os.cpu_count() or 1, workers)}
    if settings.gpus is not None:
        resources["num_gpus"] = settings.gpus  # logical on a CPU machine; caps real GPUs otherwise
    return resources


def stop_ray(runtime: RayRuntime) -> None:
    if not runtime.started:
        return
    import ray

    ray.shutdown()
