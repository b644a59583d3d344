"""Ray test support: private clusters, finding their processes, a two-node cluster, a small TsT.

Each test cluster lives under its own short RAY_TMPDIR, so the tests never see (or stop) another
Ray on the machine; `python -m tests.ray_support` runs a head node plus a second node, each with
one logical GPU, until its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DATASET = "synthetic:shortcut?rows=120&seed=3"
FOLDS = 6
TRAINER_OPTIONS = {"num_epochs": 2}
CLI_RUN = [
    "run",
    "--dataset",
    DATASET,
    "--folds",
    str(FOLDS),
    "--seed",
    "2",
    "--trainer-option",
    "num_epochs=2",
]


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
            state, parent = (entry / "stat").read_text().split(") ")[-1].split()[:2]
            if state == "Z":
                continue  # a zombie has already exited
            if int(parent) == os.getpid() and b"resource_tracker" in (entry / "cmdline").read_bytes():
                continue  # this process's multiprocessing helper (an in-process vLLM started it)
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until_gone(tmpdir: Path, timeout: float = 30.0) -> list[str]:
    """Processes of `tmpdir` still alive after `timeout` seconds, as "pid: command line" (empty
    when all exited)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = processes_using(tmpdir)
        if not alive or time.monotonic() > deadline:
            return [describe_process(pid) for pid in alive]
        time.sleep(0.5)


def describe_process(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        command = "(exited)"
    return f"{pid}: {command[:200]}"


def ray_env(tmpdir: Path) -> dict[str, str]:
    env = {**os.environ, "RAY_TMPDIR": str(tmpdir), "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return env


@contextlib.contextmanager
def private_local_cluster(num_gpus: int = 2, num_cpus: int = 2) -> Iterator[Path]:
    """A local cluster for this process (logical GPUs); afterwards none of its processes may remain."""
    import pytest

    from tst_bench.ray_cluster import ClusterOptions, acquire

    tmpdir = private_ray_tmpdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", str(tmpdir))
        patch.delenv("RAY_ADDRESS", raising=False)
        lease = acquire(ClusterOptions(num_gpus=num_gpus, num_cpus=num_cpus))
        assert lease.started_here
        try:
            yield tmpdir
        finally:
            lease.release()
    left = wait_until_gone(tmpdir)
    assert not left, f"processes of the private Ray cluster still alive: {left}"


# --- one small TsT that every Ray run must reproduce -----------------------------------------


def make_config(out: Path, **overrides):
    from tst_bench.config import RunConfig

    values = {
        "dataset": DATASET,
        "folds": FOLDS,
        "seed": 2,
        "out": out,
        "trainer_options": dict(TRAINER_OPTIONS),
    }
    return RunConfig(**{**values, **overrides})


def sequential_reference(out: Path) -> Path:
    from tst_bench.engine import run_tst

    run_tst(make_config(out), progress=False)
    return out


def cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tst_bench.cli", *CLI_RUN, "--out", str(out), *extra]


def run_to_the_end(out: Path, tmpdir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli(out, *extra), capture_output=True, text=True, timeout=600, env=ray_env(tmpdir))


def assert_same_run(out: Path, reference: Path) -> None:
    for name in ("samples.jsonl", "zero_shot.jsonl"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    result, expected = (json.loads((d / "result.json").read_text()) for d in (out, reference))
    assert result["score"] == expected["score"]
    assert result["baselines"] == expected["baselines"]
    assert [f["score"] for f in result["folds"]] == [f["score"] for f in expected["folds"]]


def fold_workers(out: Path) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["worker"] for p in sorted((out / "folds").glob("*.json"))}


def assert_same_predictions(got, expected, tolerance: float = 1e-5) -> None:
    """Same ids, order and predicted labels; option probabilities equal up to float noise."""
    assert [r.instance_id for r in got] == [r.instance_id for r in expected]
    assert [r.prediction for r in got] == [r.prediction for r in expected]
    for left, right in zip(got, expected):
        for label, prob in right.option_probs.items():
            assert abs(left.option_probs[label] - prob) <= tolerance, (left.instance_id, label)


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
