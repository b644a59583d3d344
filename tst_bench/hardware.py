"""What the machine has: NVML access, the CUDA GPUs this process may use, and a short description.

GPU discovery goes through NVML, not torch, so it costs milliseconds and creates no CUDA context.
The devices follow CUDA_VISIBLE_DEVICES the way CUDA reads it (ordinals or UUID prefixes, stopping
at the first invalid entry) and are identified by UUID, so `cuda:i` here is `cuda:i` in torch.
When NVML is missing (no NVIDIA driver) every caller gets the reason, never made-up devices.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

MIB = 2**20


@dataclass(frozen=True)
class GpuDevice:
    """A CUDA device visible to this process: `index` is its torch ordinal (cuda:index)."""

    index: int
    nvml_index: int
    uuid: str
    name: str
    total_mib: float

    @property
    def label(self) -> str:
        return f"cuda:{self.index}"


@dataclass(frozen=True)
class NvmlStatus:
    available: bool
    reason: str = ""
    driver: str | None = None

    def describe(self) -> str:
        return (
            f"NVML available (driver {self.driver})"
            if self.available
            else f"NVML not available: {self.reason}"
        )


def nvml():
    """The pynvml module, initialised (each call adds one reference, see `release_nvml`)."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def release_nvml() -> None:
    try:
        import pynvml

        pynvml.nvmlShutdown()
    except Exception:  # shutting down an NVML that never started is harmless
        pass


def nvml_status() -> NvmlStatus:
    try:
        pynvml = nvml()
    except ImportError:
        return NvmlStatus(False, "pynvml is not installed (pip install nvidia-ml-py)")
    except Exception as error:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return NvmlStatus(False, f"{type(error).__name__}: {error} (no NVIDIA driver on this machine?)")
    try:
        return NvmlStatus(True, driver=text(pynvml.nvmlSystemGetDriverVersion()))
    finally:
        release_nvml()


def nvml_mib(value: float | str | bytes) -> float:
    """A byte count from NVML in MiB (pynvml types its fields loosely)."""
    return float(value) / MIB


def text(value: str | bytes) -> str:
    """NVML strings: str from current pynvml, bytes from old releases."""
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_visible_devices(value: str | None) -> list[int] | list[str] | None:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: None (unset: all devices), ordinals, or UUID prefixes.

    Parsing stops at the first entry that is not a valid ordinal / UUID prefix; a repeated entry
    hides every device (CUDA's own rules).
    """
    if value is None:
        return None
    entries = [entry.strip() for entry in value.split(",")]
    if entries and entries[0].startswith(("GPU-", "MIG-")):
        prefix = entries[0][:4]
        uuids: list[str] = []
        for entry in entries:
            if not entry.startswith(prefix):
                break
            if entry in uuids:
                return []
            uuids.append(entry)
        return uuids
    ordinals: list[int] = []
    for entry in entries:
        digits = ""
        for char in entry:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        ordinal = int(digits)
        if ordinal in ordinals:
            return []
        ordinals.append(ordinal)
    return ordinals


def select_visible(all_uuids: list[str], visible: list[int] | list[str] | None) -> list[int]:
    """NVML indices of the devices CUDA will expose, in CUDA ordinal order."""
    if visible is None:
        return list(range(len(all_uuids)))
    chosen: list[int] = []
    for entry in visible:
        if isinstance(entry, int):
            index = entry if 0 <= entry < len(all_uuids) else -1
        else:
            matches = [i for i, uuid in enumerate(all_uuids) if uuid.startswith(entry)]
            index = matches[0] if len(matches) == 1 else -1
        if index < 0:
            break
        if index in chosen:
            return []
        chosen.append(index)
    return chosen


@lru_cache(maxsize=1)
def discover_gpus() -> tuple[GpuDevice, ...]:
    """The CUDA GPUs this process may use (empty without NVML; see `nvml_status` for why)."""
    try:
        pynvml = nvml()
    except Exception:
        return ()
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        uuids = [text(pynvml.nvmlDeviceGetUUID(handle)) for handle in handles]
        visible = parse_visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))
        indices = select_visible(uuids, visible)
        if visible and not indices:
            logger.warning(
                "CUDA_VISIBLE_DEVICES=%s matches none of NVML's GPUs (MIG instances are not listed)",
                os.environ.get("CUDA_VISIBLE_DEVICES"),
            )
        devices = []
        for ordinal, nvml_index in enumerate(indices):
            handle = handles[nvml_index]
            devices.append(
                GpuDevice(
                    index=ordinal,
                    nvml_index=nvml_index,
                    uuid=uuids[nvml_index],
                    name=text(pynvml.nvmlDeviceGetName(handle)),
                    total_mib=nvml_mib(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                )
            )
        return tuple(align_with_torch(devices))
    finally:
        release_nvml()


def align_with_torch(devices: list[GpuDevice]) -> list[GpuDevice]:
    """Reorder by the UUIDs torch reports, when torch has CUDA up already (CUDA_DEVICE_ORDER may differ).

    torch is not imported here: discovery must stay cheap at pytest start-up.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return devices
    by_uuid = {device.uuid.removeprefix("GPU-").removeprefix("MIG-"): device for device in devices}
    ordered = []
    for ordinal in range(torch.cuda.device_count()):
        uuid = str(torch.cuda.get_device_properties(ordinal).uuid).removeprefix("GPU-").removeprefix("MIG-")
        device = by_uuid.get(uuid)
        if device is None:
            logger.warning("torch device cuda:%d (UUID %s) is not among NVML's devices", ordinal, uuid)
            return devices
        ordered.append(GpuDevice(ordinal, device.nvml_index, device.uuid, device.name, device.total_mib))
    return ordered


def torch_cuda_count() -> int:
    """CUDA devices torch can use (0 without a CUDA build); imports torch, so call it lazily."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def total_memory_mib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MIB
    except (ValueError, OSError, AttributeError):
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_hardware() -> dict[str, Any]:
    """What a benchmark ran on, for extra_info["tst_hardware"] and reports."""
    gpus = discover_gpus()
    status = nvml_status()
    memory = total_memory_mib()
    description = {
        "summary": hardware_summary(gpus),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory / 1024, 1) if memory else None,
        "gpus": [asdict(gpu) for gpu in gpus],
        "nvml": status.describe(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        description["torch"] = torch.__version__
    return description


def hardware_summary(gpus: tuple[GpuDevice, ...] | None = None) -> str:
    gpus = discover_gpus() if gpus is None else gpus
    if gpus:
        names = sorted({gpu.name for gpu in gpus})
        return f"{len(gpus)}x {', '.join(names)} ({gpus[0].total_mib / 1024:.0f} GiB)"
    return f"CPU only: {cpu_model()}, {os.cpu_count()} cores"
