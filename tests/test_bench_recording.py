"""Speedup curves, speedup counts per machine, and record file names."""

import dataclasses

import pytest

from tst_bench.bench.recording import SpeedupRecorder, format_speedup, safe_name
from tst_bench.bench.settings import TsTSettings

BASE = TsTSettings(
    models=("tiny",),
    datasets=("synthetic:shortcut",),
    backends=("hf",),
    trainers=("peft",),
    folds=5,
    gpus=None,
    workers=None,
    memory_tolerance_mib=256,
    results=None,
    report=None,
    inject_leak=0,
    ray_address=None,
    skip_slow=False,
)


def test_speedup_is_relative_to_one_worker_of_the_same_executor():
    recorder = SpeedupRecorder("workers", "CPU only")
    recorder.add("sequential", 1, 30.0)
    assert recorder.add("ray", 2, 12.0)["speedup"] == [None]  # no 1-worker run measured yet
    curve = recorder.add("ray", 1, 20.0)
    assert curve["counts"] == [1, 2] and curve["seconds"] == [20.0, 12.0]
    assert curve["speedup"] == pytest.approx([1.0, 20.0 / 12.0])
    assert curve["unit"] == "workers" and curve["hardware"] == "CPU only" and curve["executor"] == "ray"
    assert (
        format_speedup(curve) == "speedup (ray on CPU only): 1 workers: 20.0s, 1.00x; 2 workers: 12.0s, 1.67x"
    )


@pytest.mark.parametrize(
    ("changes", "unit", "counts"),
    [
        ({}, "workers", [1, 2]),
        ({"workers": 4, "given": frozenset({"workers"})}, "workers", [1, 2, 3, 4]),
        ({"gpu_count": 4}, "gpus", [1, 2, 3, 4]),
        ({"gpu_count": 4, "gpus": 2}, "gpus", [1, 2]),
        ({"gpu_count": 1, "workers": 2, "given": frozenset({"workers"})}, "workers", [1, 2]),
    ],
)
def test_speedup_counts_follow_the_machine(changes, unit, counts):
    settings = dataclasses.replace(BASE, **changes)
    assert settings.speedup_unit == unit
    assert settings.speedup_counts == counts


def test_record_names_are_file_names():
    assert safe_name("benchmarks/test_x.py::test_y[synthetic:shortcut?rows=5-tiny]") == (
        "test_x.py-test_y-synthetic-shortcut-rows=5-tiny"
    )
