"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_source():
    from tst_bench.models import resolve_model

    return resolve_model("tiny")
