"""Fold observers: what watches folds from outside the model code (the memory monitor, a leak).

A leaf module (schemas and folds only), so the memory monitor and the evaluator both build on it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence

from .folds import FoldSpec
from .schemas import FoldMemory, FoldResult

__all__ = ["FoldObserver", "FoldObservers"]


class FoldObserver:
    """Watches folds from outside the model code (the memory monitor is one); every hook is optional."""

    def pass_started(self, specs: Sequence[FoldSpec]) -> None:
        """A training pass over `specs` begins: one fold, or every fold the trainer trains together.
        Each fold's `fold_started` follows."""

    def fold_started(self, spec: FoldSpec) -> None:
        """The fold's training is about to begin."""

    def fold_finished(self, spec: FoldSpec) -> FoldMemory | None:
        """Called after the fold's clean-up; may return what it measured."""
        return None


class FoldObservers:
    """A run's fold observers, called in order around each training pass and fold.

    In-process the evaluator calls them; under Ray the driver does, around the remote call. Either
    way `finished` attaches the measured memory to the fold's result.
    """

    def __init__(self, observers: Sequence[FoldObserver] = ()):
        self.observers = list(observers)

    def started(self, specs: Sequence[FoldSpec]) -> None:
        """A pass over `specs` starts: every observer hears of the pass, then of each fold."""
        for observer in self.observers:
            observer.pass_started(specs)
        for spec in specs:
            for observer in self.observers:
                observer.fold_started(spec)

    def finished(self, spec: FoldSpec, result: FoldResult) -> FoldResult:
        """After the fold's clean-up: its result with the memory the observers measured."""
        memory = self._close(spec)
        return result if memory is None else result.model_copy(update={"memory": memory})

    def abandoned(self, spec: FoldSpec) -> None:
        """The fold failed (or its worker died): close what watches it; it has no result."""
        self._close(spec)

    def _close(self, spec: FoldSpec) -> FoldMemory | None:
        memory = None
        for observer in self.observers:
            memory = observer.fold_finished(spec) or memory
        return memory
