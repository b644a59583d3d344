"""Ray test support: private temp dirs, finding a session's processes, a two-node cluster.

Each test cluster lives under its own short RAY_TMPDIR, so the tests never see (or stop) another
Ray on the machine; `python -m tests.ray_support` runs a head node plus a second node, each with
one logical GPU, until its stdin closes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def private_ray_tmpdir() -> Path:
    """A short directory (Ray's socket paths must stay under ~100 characters)."""
    return Path(tempfile.mkdtemp(prefix="tstray-", dir="/tmp"))


def processes_using(tmpdir: Path) -> list[int]:
    """Live processes whose command line or environment mentions `tmpdir` (Ray's and its workers)."""
    needle = str(tmpdir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().split(") ")[-1].startswith("Z"):
                continue  # a zombie has already exited
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until_gone(tmpdir: Path, timeout: float = 30.0) -> list[int]:
    """Processes of `tmpdir` still alive after `timeout` seconds (empty when all exited)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = processes_using(tmpdir)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def ray_env(tmpdir: Path) -> dict[str, str]:
    env = {**os.environ, "RAY_TMPDIR": str(tmpdir), "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return env


class TwoNodeCluster:
    """A head node and a second node (separate raylets, one logical GPU each) in a child process."""

    def __init__(self, tmpdir: Path):
        self.tmpdir = tmpdir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.ray_support"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=ray_env(tmpdir),
            cwd=Path(__file__).resolve().parent.parent,
        )
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"two-node cluster did not start (exit {self.process.wait()})")
        info = json.loads(line)
        self.address: str = info["address"]
        self.node_ids: list[str] = info["node_ids"]
        self.raylet_pids: list[int] = info["raylet_pids"]

    def raylets_alive(self) -> bool:
        return all(Path(f"/proc/{pid}").exists() for pid in self.raylet_pids)

    def shutdown(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # type: ignore[union-attr]
            self.process.wait(timeout=60)


def _serve_two_nodes() -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False}
    )
    second = cluster.add_node(num_cpus=1, num_gpus=1)
    nodes = [cluster.head_node, second]
    info = {
        "address": cluster.address,
        "node_ids": [node.node_id for node in nodes],
        "raylet_pids": [node.all_processes["raylet"][0].process.pid for node in nodes],
    }
    print(json.dumps(info), flush=True)
    try:
        sys.stdin.read()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    _serve_two_nodes()
