"""Progress bars: long work (pretraining, training, generation, the grid) reports through rich.

Engine functions take an optional `rich.progress.Progress`; `None` means quiet (tests, library use).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["Progress", "make_progress", "tracker"]

Advance = Callable[..., None]


def make_progress(console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}", markup=False),  # labels, paths: the user's text
        console=console,
    )


@contextmanager
def tracker(progress: Progress | None, description: str, total: int) -> Iterator[Advance]:
    """Yields `advance(n=1, **info)`; the bar is removed when the work is done."""
    if progress is None:
        yield lambda n=1, **info: None
        return
    task = progress.add_task(description, total=total, info="")

    def advance(n: int = 1, **info: float) -> None:
        text = "  ".join(f"{k} {v:.3f}" for k, v in info.items())
        progress.update(task, advance=n, info=text)

    try:
        yield advance
    finally:
        progress.remove_task(task)
