"""The report's environment section reads GPUs through tst_bench.hardware, like the benchmarks do."""

from tst_bench.hardware import GpuDevice, NvmlStatus, discover_gpus, nvml_status
from tst_bench.reports import environment


def test_gpus_are_the_visible_devices_of_hardware_py(monkeypatch):
    h200 = GpuDevice(index=0, nvml_index=3, uuid="GPU-1234", name="NVIDIA H200", total_mib=143771.0)
    monkeypatch.setattr(environment, "nvml_status", lambda: NvmlStatus(True, driver="580.65"))
    monkeypatch.setattr(environment, "discover_gpus", lambda: (h200,))
    assert environment.gpu_descriptions() == (["cuda:0: NVIDIA H200, 140 GiB"], None)
    monkeypatch.setattr(environment, "discover_gpus", lambda: ())
    gpus, note = environment.gpu_descriptions()
    assert gpus == [] and note is not None and "no GPU visible" in note


def test_this_machine_is_described_or_the_note_says_why_not():
    status = nvml_status()
    report = environment.current_environment()
    if status.available:
        assert len(report.gpus) == len(discover_gpus())
    else:
        assert (report.gpus, report.gpu_note) == ([], status.describe())
    assert {"system", "python", "cpu cores", "memory"} <= report.hardware.keys()
