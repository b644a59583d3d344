"""Iterative Bias Pruning (IBP) with a seeded random-pruning control; see `runner` for the layout."""

from .runner import PruneConfig, PruneResult, run_prune
from .trajectory import PruneRound, RemovedRow, Trajectory

__all__ = ["PruneConfig", "PruneResult", "PruneRound", "RemovedRow", "Trajectory", "run_prune"]
