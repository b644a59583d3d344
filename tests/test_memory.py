"""The memory monitor, the clean-up check, GPU discovery and the deliberate leak."""

import time

import pytest

from tst_bench.folds import FoldSpec
from tst_bench.hardware import discover_gpus, nvml_status, parse_visible_devices, select_visible
from tst_bench.leak import LeakInjector
from tst_bench.memory import (
    MemoryMonitor,
    MemoryNotReleased,
    NvmlProbe,
    RssProbe,
    assert_memory_released,
    check_memory,
    open_probe,
)
from tst_bench.schemas import DeviceMemory, FoldMemory

from .memory_support import ScriptedProbe, reading, run_in_passes

UUIDS = ["GPU-aaaa-1111", "GPU-bbbb-2222", "GPU-abcd-3333"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", []),
        ("0,1", [0, 1]),
        ("1, 0", [1, 0]),
        ("0,-1,1", [0]),
        ("2gpu,1", [2, 1]),
        ("0,0", []),
        ("GPU-bbbb,GPU-aaaa", ["GPU-bbbb", "GPU-aaaa"]),
        ("GPU-bbbb,1", ["GPU-bbbb"]),
    ],
)
def test_cuda_visible_devices_is_read_as_cuda_reads_it(value, expected):
    assert parse_visible_devices(value) == expected


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [0, 1, 2]),
        ([2, 0], [2, 0]),
        ([1, 7, 0], [1]),
        (["GPU-bbbb"], [1]),
        (["GPU-ab", "GPU-a"], [2]),  # GPU-a matches two devices: ambiguous, parsing stops
        (["GPU-aaaa", "GPU-aaaa-1111"], []),
    ],
)
def test_visible_devices_map_to_nvml_devices_by_uuid(visible, expected):
    assert select_visible(UUIDS, visible) == expected


def fold(before: float, peak: float, after: float) -> FoldMemory:
    return FoldMemory(source="nvml", before=reading(before), peak=reading(peak), after_cleanup=reading(after))


def test_check_compares_later_folds_with_the_first_fold_s_clean_up():
    folds = {
        "r0_f0": fold(1000, 9000, 1010),
        "r0_f1": fold(1010, 9100, 1200),
        "r0_f2": fold(1200, 9000, 1300),
    }
    check = check_memory(folds, tolerance_mib=300)
    assert check.ok
    assert [row.baseline_mib for row in check.rows] == [1000, 1010, 1010]
    assert [row.growth_mib for row in check.rows] == [10, 190, 290]
    assert [row.peak_mib for row in check.rows] == [9000, 9100, 9000]
    failing = check_memory(folds, tolerance_mib=250)
    assert not failing.ok
    assert [row.ok for row in failing.rows] == [True, True, False]
    assert failing.worst_growth_mib == 290


# NVML readings (MiB) of an H100, hf/peft TsT of random-qwen2-0.5b, 3 folds (before, peak, after):
# the first fold keeps +650 MiB of CUDA warm-up for good, then memory is flat.
H100_CLEAN = [(2201, 7011, 2851), (2851, 6431, 2851), (2851, 6431, 2851)]
# The same run with --tst-inject-leak 2048: every fold keeps 2 GiB more.
H100_LEAK = [(2201, 9059, 4899), (4899, 10527, 6947), (6947, 12575, 8995)]


def test_one_time_warm_up_passes_and_a_per_fold_leak_fails():
    clean = check_memory({f"r0_f{i}": fold(*r) for i, r in enumerate(H100_CLEAN)}, tolerance_mib=256)
    assert clean.ok
    assert [row.allowed_mib for row in clean.rows] == [1024, 256, 256]
    leak = check_memory({f"r0_f{i}": fold(*r) for i, r in enumerate(H100_LEAK)}, tolerance_mib=256)
    assert [row.ok for row in leak.rows] == [False, False, False]
    no_warm_up = check_memory({"f0": fold(*H100_CLEAN[0])}, tolerance_mib=256, warmup_mib=0)
    assert not no_warm_up.ok


def test_a_failed_check_raises_with_a_per_fold_table():
    folds = {"r0_f0": fold(1000, 9000, 1512), "r0_f1": fold(1512, 9500, 2024)}
    with pytest.raises(MemoryNotReleased) as failure:
        assert_memory_released(folds, tolerance_mib=256)
    message = str(failure.value)
    assert "GPU memory (NVML) NOT released" in message and "fold(s) r0_f1 " in message
    assert "| fold | device | baseline | before | peak | after clean-up | after - baseline |" in message
    assert "| r0_f0 | cuda:0 | 1000 | 1000 | 9000 | 1512 | +512 | not listed | 1024 | yes |" in message
    assert "| r0_f1 | cuda:0 | 1512 | 1512 | 9500 | 2024 | +512 | not listed | 256 | NO |" in message


def test_the_check_needs_folds():
    with pytest.raises(ValueError, match="no fold memory"):
        check_memory({}, 10)


def test_without_nvml_the_probe_says_why_and_reads_rss():
    if nvml_status().available:
        pytest.skip("NVML works on this machine: the fallback does not apply")
    probe = open_probe()
    assert isinstance(probe, RssProbe) and probe.source == "rss"
    assert "NVML not available" in probe.note and "RSS" in probe.note
    assert discover_gpus() == ()


def test_rss_probe_sees_a_real_allocation():
    torch = pytest.importorskip("torch")
    probe = RssProbe()
    before = probe.read()[0].used_mib
    block = torch.ones(256 * 2**20, dtype=torch.uint8)
    during = probe.read()[0].used_mib
    del block
    after = probe.read()[0].used_mib
    assert during - before > 200
    assert during - after > 200


def test_monitor_records_the_peak_of_a_fold_and_what_stays():
    torch = pytest.importorskip("torch")
    spec = FoldSpec(0, 0, 2, ("a",), ("b",))
    with MemoryMonitor(RssProbe(), interval_s=0.01) as monitor:
        monitor.fold_started(spec)
        block = torch.ones(300 * 2**20, dtype=torch.uint8)
        time.sleep(0.2)
        del block
        memory = monitor.fold_finished(spec)
        report = monitor.report()
    (before,), (peak,), (after,) = memory.before, memory.peak, memory.after_cleanup
    assert peak.used_mib - before.used_mib > 250
    assert peak.used_mib - after.used_mib > 250
    assert memory.samples is not None and memory.samples > 2 and memory.interval_s == 0.01
    assert report.folds == {"r0_f0": memory} and report.source == "rss"
    assert report.check(256).ok


def used(readings: list[DeviceMemory]) -> float:
    (only,) = readings
    return only.used_mib


def test_overlapping_folds_are_recorded_each_under_its_own_key():
    """Ray runs folds side by side: start a, start b, end a, start c, end b."""
    probe = ScriptedProbe()
    a, b, c = (FoldSpec(0, index, 3, (), ()) for index in range(3))
    with MemoryMonitor(probe, interval_s=3600) as monitor:  # no background sample in between
        probe.level = 1000
        monitor.fold_started(a)
        probe.level = 2000
        monitor.fold_started(b)
        probe.level = 5000
        memory_a = monitor.fold_finished(a)
        probe.level = 1500
        monitor.fold_started(c)
        probe.level = 1200
        memory_b = monitor.fold_finished(b)
        report = monitor.report()
    assert list(report.folds) == ["r0_f0", "r0_f1"]
    assert report.folds == {"r0_f0": memory_a, "r0_f1": memory_b}
    assert (used(memory_a.before), used(memory_a.peak), used(memory_a.after_cleanup)) == (1000, 5000, 5000)
    # b was open while a ended at 5000 MiB: that reading is b's peak too
    assert (used(memory_b.before), used(memory_b.peak), used(memory_b.after_cleanup)) == (2000, 5000, 1200)
    assert memory_a.samples == 3 and memory_b.samples == 4


def test_a_fold_can_end_only_once_and_only_after_it_started():
    spec = FoldSpec(0, 0, 2, (), ())
    with MemoryMonitor(ScriptedProbe(), interval_s=3600) as monitor:
        with pytest.raises(KeyError, match="r0_f0"):
            monitor.fold_finished(spec)
        monitor.fold_started(spec)
        with pytest.raises(ValueError, match="r0_f0"):
            monitor.fold_started(spec)
        monitor.fold_finished(spec)
        with pytest.raises(KeyError, match="r0_f0"):
            monitor.fold_finished(spec)


def test_leak_injector_keeps_memory_per_fold_until_released():
    pytest.importorskip("torch")
    probe = RssProbe()
    leak = LeakInjector(200, device="cpu")
    start = probe.read()[0].used_mib
    for index in range(2):
        leak.fold_started(FoldSpec(0, index, 2, (), ()))
        assert leak.fold_finished(FoldSpec(0, index, 2, (), ())) is None
    assert leak.leaked_mib == 400
    assert probe.read()[0].used_mib - start > 350
    leak.release()
    assert probe.read()[0].used_mib - start < 100


def test_a_leak_needs_a_size():
    with pytest.raises(ValueError, match="positive size"):
        LeakInjector(0)


@pytest.mark.gpu
def test_nvml_probe_sees_a_cuda_allocation_on_the_right_device():
    import torch

    torch.cuda.init()
    gpus = discover_gpus.__wrapped__()  # after CUDA is up, so the order is checked against torch's UUIDs
    assert [gpu.index for gpu in gpus] == list(range(torch.cuda.device_count()))
    for gpu in gpus:
        assert str(torch.cuda.get_device_properties(gpu.index).uuid).removeprefix("GPU-") in gpu.uuid
    probe = NvmlProbe(gpus[:1])
    try:
        before = probe.read()[0]
        block = torch.ones(1024 * 2**20, dtype=torch.uint8, device="cuda:0")
        torch.cuda.synchronize()
        during = probe.read()[0]
        del block
        torch.cuda.empty_cache()
        after = probe.read()[0]
    finally:
        probe.close()
    assert during.used_mib - before.used_mib >= 1000
    assert during.used_mib - after.used_mib >= 1000
    assert during.total_mib == pytest.approx(gpus[0].total_mib)
    if during.process_mib is not None:  # NVML lists this process (not inside every container)
        assert during.process_mib >= 1000


@pytest.mark.parametrize("leak_per", ["fold", "pass"])
def test_a_leak_in_a_later_training_pass_fails_the_check(leak_per):
    """Folds trained together start together: their leaks are in place before any of them is
    measured, so the check compares passes (the CUDA failure: one pass, leaks inside warm-up)."""
    clean = run_in_passes(folds=4, folds_per_pass=2, warmup_mib=650).check(256)
    assert clean.ok and clean.passes == 2
    leaky = run_in_passes(folds=4, folds_per_pass=2, leak_mib=512, leak_per=leak_per).check(256)
    assert not leaky.ok
    assert [row.ok for row in leaky.rows] == [True, True, False, False]  # the second pass's folds
    assert {row.baseline_mib for row in leaky.rows[2:]} == {leaky.rows[1].after_mib}


def test_the_folds_of_a_pass_share_one_before_reading_and_its_steady_state():
    report = run_in_passes(folds=4, folds_per_pass=2, leak_mib=100, leak_per="fold")
    befores = [used(memory.before) for memory in report.folds.values()]
    assert befores[0] == befores[1] and befores[2] == befores[3]
    assert [memory.training_pass for memory in report.folds.values()] == ["r0_f0", "r0_f0", "r0_f2", "r0_f2"]


def test_one_pass_is_held_only_to_the_warm_up_allowance_and_says_so():
    one_pass = run_in_passes(folds=2, folds_per_pass=None, leak_mib=512, leak_per="fold").check(256)
    assert one_pass.ok and one_pass.passes == 1  # 1,024 MiB kept: within the warm-up allowance
    assert "trained in one pass, so only the warm-up allowance (1024 MiB) was checked" in one_pass.message()
    one_by_one = run_in_passes(folds=2, folds_per_pass=1, leak_mib=512, leak_per="fold").check(256)
    assert not one_by_one.ok and one_by_one.passes == 2
    assert "only the warm-up allowance" not in one_by_one.message()


def test_a_pass_leak_is_kept_once_per_pass():
    pytest.importorskip("torch")
    leak = LeakInjector(64, device="cpu", per="pass")
    specs = [FoldSpec(0, index, 2, (), ()) for index in range(2)]
    leak.pass_started(specs)
    for spec in specs:
        leak.fold_started(spec)
    assert leak.leaked_mib == 64
    leak.release()
    with pytest.raises(ValueError, match="per fold or per pass"):
        LeakInjector(64, per="step")  # pyright: ignore[reportArgumentType]  (deliberately invalid)
