"""Iterative Bias Pruning (IBP) with a seeded random-pruning control; see `runner` for the layout.

Names are imported lazily, so importing the package does not load the engine. The `tst-bench
prune` command is tst_bench/cli/prune.py.
"""

from __future__ import annotations

from ..lazy_exports import lazy_getattr

_EXPORTS = {
    "PruneConfig": "runner",
    "PruneResult": "runner",
    "run_prune": "runner",
    "PruneRound": "trajectory",
    "RemovedRow": "trajectory",
    "Trajectory": "trajectory",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
