"""Progress display for long steps: a rich progress bar per task, or nothing when disabled (tests, pipes)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.progress import Progress as _RichProgress


class _Task:
    def __init__(self, owner: "Progress", task_id):
        self._owner, self._id = owner, task_id

    def advance(self, n: int = 1) -> None:
        if self._owner._bars:
            self._owner._bars.advance(self._id, n)

    def describe(self, description: str) -> None:
        """Replace the task's label (e.g. with a live rate such as pairs per minute)."""
        if self._owner._bars:
            self._owner._bars.update(self._id, description=description)

    def close(self) -> None:
        if self._owner._bars:
            self._owner._bars.stop_task(self._id)


class Progress:
    """``with Progress() as p: t = p.task("embed", total=n); t.advance()``."""

    def __init__(self, enabled: bool = True, console: Console | None = None):
        self._bars = _RichProgress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console or Console(stderr=True),
        ) if enabled else None

    def __enter__(self) -> "Progress":
        if self._bars:
            self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bars:
            self._bars.stop()

    def task(self, description: str, total: int | None = None, completed: int = 0) -> _Task:
        task_id = self._bars.add_task(description, total=total, completed=completed) if self._bars else None
        return _Task(self, task_id)
