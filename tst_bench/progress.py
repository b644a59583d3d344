"""The progress bar of long loops (folds of a run, runs of a sweep); off, it does nothing."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn


class ProgressBar:
    """A transient rich bar over `total` steps, or nothing when not `enabled` (tests, pytest, pipes):
    the loops log a line per step either way."""

    def __init__(self, description: str, total: int, completed: int = 0, enabled: bool = True):
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self._task = self._progress.add_task(description, total=total, completed=completed)

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def describe(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description)

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)
