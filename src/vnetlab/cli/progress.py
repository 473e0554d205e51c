"""A progress bar where work is long (``up`` of a large lab, ``matrix``), for people only.

It shows on a terminal, on stderr, and goes away when the work is done (transient); with
``-o json``, or when stdout is not a terminal (a pipe, a file, a test), nothing is printed.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .render import Output, err_console


def wanted(output: Output, stream: TextIO | None = None) -> bool:
    """A bar only for a person: table output on a terminal."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return output != Output.json and bool(isatty and isatty())


class Bar:
    """``with Bar(enabled, "Tracing", total) as bar: bar.advance()``; a no-op when not ``enabled``."""

    def __init__(self, enabled: bool, description: str, total: int | None = None):
        self.enabled = enabled
        self._progress = None
        self._task = None
        self._description, self._total = description, total
        self._stages = 0

    def __enter__(self) -> "Bar":
        if self.enabled:
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self._total)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, completed: int | None = None, total: int | None = None, description: str | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, total=total, description=description)

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, steps)

    def stage(self, description: str) -> None:
        """The next of a known number of stages: named, and the previous one counted done."""
        if self._progress is not None:
            self._progress.update(self._task, description=description, completed=self._stages)
        self._stages += 1
