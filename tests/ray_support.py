"""Ray test support: private clusters, finding their processes, a running cluster to join, a small TsT.

Each test cluster lives under its own short RAY_TMPDIR, so the tests never see (or stop) another
Ray on the machine; `python -m tests.ray_support N` runs a cluster of N nodes, each with one
logical GPU, until its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tst_bench.evaluator import FoldObserver

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
    from tst_bench.cluster.connection import ClusterOptions, acquire

    with _private_tmpdir() as tmpdir:
        lease = acquire(ClusterOptions(num_gpus=num_gpus, num_cpus=num_cpus))
        assert lease.started_here
        try:
            yield tmpdir
        finally:
            lease.release()


class SharedCluster:
    """The private local cluster (two logical GPUs, two CPUs) that consecutive test modules share:
    started by the first module that asks for it, kept for the next one, and stopped before a
    module that does not use it (it may connect Ray elsewhere) or at the end of the session."""

    def __init__(self) -> None:
        self._context: contextlib.AbstractContextManager[Path] | None = None
        self.tmpdir: Path | None = None

    def start(self) -> Path:
        if self._context is None or self.tmpdir is None:
            self._context = private_local_cluster(num_gpus=2, num_cpus=2)
            self.tmpdir = self._context.__enter__()
        return self.tmpdir

    def stop(self) -> None:
        context, self._context, self.tmpdir = self._context, None, None
        if context is not None:
            context.__exit__(None, None, None)


@contextlib.contextmanager
def _private_tmpdir() -> Iterator[Path]:
    """RAY_TMPDIR set to a fresh directory; afterwards none of its processes may remain."""
    import pytest

    tmpdir = private_ray_tmpdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", str(tmpdir))
        patch.delenv("RAY_ADDRESS", raising=False)
        yield tmpdir
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


def assert_close_run(out: Path, reference: Path, tolerance: float = 1e-4) -> None:
    """Same samples, predictions and folds as `reference`; scores and s(x) equal up to float
    summation order (adapters trained in other batches)."""
    from tst_bench.schemas import SampleResult

    got, expected = (
        [SampleResult.model_validate_json(line) for line in (d / "samples.jsonl").read_text().splitlines()]
        for d in (out, reference)
    )
    assert [(s.id, s.fold, s.prediction) for s in got] == [(s.id, s.fold, s.prediction) for s in expected]
    for left, right in zip(got, expected, strict=True):
        assert abs(left.score - right.score) <= tolerance, left.id
        assert left.bias_score is not None and right.bias_score is not None, left.id
        assert abs(left.bias_score - right.bias_score) <= tolerance, left.id


def fold_workers(out: Path) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["worker"] for p in sorted((out / "folds").glob("*.json"))}


def assert_same_predictions(got, expected, tolerance: float = 1e-5) -> None:
    """Same ids, order and predicted labels; option probabilities equal up to float noise."""
    assert [r.instance_id for r in got] == [r.instance_id for r in expected]
    assert [r.prediction for r in got] == [r.prediction for r in expected]
    for left, right in zip(got, expected, strict=True):
        for label, prob in right.option_probs.items():
            assert abs(left.option_probs[label] - prob) <= tolerance, (left.instance_id, label)


class RecordingObserver(FoldObserver):
    """Notes the fold events the driver reports."""

    def __init__(self):
        self.events: list[str] = []

    def fold_started(self, spec) -> None:
        self.events.append(f"start {spec.key}")

    def fold_finished(self, spec):
        self.events.append(f"end {spec.key}")

    def assert_each_fold_started_then_finished(self, keys: list[str]) -> None:
        assert sorted(self.events) == sorted([f"start {k}" for k in keys] + [f"end {k}" for k in keys])
        assert all(self.events.index(f"start {k}") < self.events.index(f"end {k}") for k in keys)


def processes_running(task: str, tmpdir: Path) -> list[int]:
    """Our Ray workers (by RAY_TMPDIR in their environment) whose process title shows `task`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and task.encode() in (entry / "cmdline").read_bytes()
                and f"RAY_TMPDIR={tmpdir}".encode() in (entry / "environ").read_bytes()
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def run_killing_a_worker(tmpdir: Path, out: Path, caplog, **overrides) -> tuple[int, str]:
    """Run the small TsT (RunConfig `overrides`) into `out` on two Ray workers while one is
    killed mid-fold: (the killed worker's pid, the warnings logged)."""
    import logging

    from tst_bench.engine import run_tst

    killed: list[int] = []
    killer = threading.Thread(target=kill_a_worker_mid_fold, args=(tmpdir, killed), daemon=True)
    killer.start()
    with caplog.at_level(logging.WARNING, logger="tst_bench"):
        run_tst(make_config(out, **{"executor": "ray", "workers": 2, **overrides}), progress=False)
    killer.join(timeout=1)
    assert killed, "no worker was seen running a fold"
    return killed[0], caplog.text


def kill_a_worker_mid_fold(tmpdir: Path, killed: list[int], delay: float = 0.5) -> None:
    """Kill (SIGKILL) the first of our fold workers seen running a fold, `delay` s into it."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        busy = processes_running("FoldWorker.evaluate", tmpdir)
        if busy:
            time.sleep(delay)  # the fold is training now
            os.kill(busy[0], signal.SIGKILL)
            killed.append(busy[0])
            return
        time.sleep(0.05)


class ClusterProcess:
    """A running Ray cluster in a child process, as a user's cluster runs apart from tst-bench:
    a head node and `nodes - 1` more (separate raylets, one logical GPU and one CPU each)."""

    def __init__(self, tmpdir: Path, nodes: int = 2):
        self.tmpdir = tmpdir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.ray_support", str(nodes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=ray_env(tmpdir),
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.process.stdout is not None  # piped above
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {nodes}-node cluster did not start (exit {self.process.wait()})")
        info = json.loads(line)
        self.address: str = info["address"]
        self.node_ids: list[str] = info["node_ids"]
        self.raylet_pids: list[int] = info["raylet_pids"]

    def raylets_alive(self) -> bool:
        return all(Path(f"/proc/{pid}").exists() for pid in self.raylet_pids)

    def shutdown(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None  # piped in __init__
            self.process.stdin.close()
            self.process.wait(timeout=60)


def _serve(nodes: int) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False}
    )
    assert cluster.head_node is not None  # initialize_head=True
    all_nodes = [cluster.head_node] + [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(nodes - 1)]
    info = {
        "address": cluster.address,
        "node_ids": [node.node_id for node in all_nodes],
        "raylet_pids": [node.all_processes["raylet"][0].process.pid for node in all_nodes],
    }
    print(json.dumps(info), flush=True)
    try:
        sys.stdin.read()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
