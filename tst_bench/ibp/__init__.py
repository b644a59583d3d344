"""Iterative Bias Pruning (IBP) with a seeded random-pruning control; see `runner` for the layout.

Names are imported lazily, so importing the package does not load the engine. The `tst-bench
prune` command is tst_bench/cli/prune.py.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PruneConfig": "runner",
    "PruneResult": "runner",
    "run_prune": "runner",
    "PruneRound": "trajectory",
    "RemovedRow": "trajectory",
    "Trajectory": "trajectory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tst_bench.ibp' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
