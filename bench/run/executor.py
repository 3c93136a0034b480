"""Executors: what runs the cells the runner has claimed, and hands back their outcomes.

`Executor` is the runner's side of the contract; `LocalExecutor` runs cells one after another
in this process, `bench.run.process_executor.ProcessExecutor` side by side in worker processes
(the default on a CPU), `bench.run.ray_executor.RayExecutor` as Ray tasks. `make_executor`
picks one by name.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench.engine.record import CellRecord
from bench.progress import Progress
from bench.spec.settings import Cell

if TYPE_CHECKING:
    from bench.engine.training import Checkpointing
    from bench.run.ray_executor import RayOptions

EXECUTORS = ("auto", "local", "process", "ray")

Outcome = CellRecord | Exception  # a finished cell: its record, or why it failed


class Executor(Protocol):
    """Runs claimed cells; the runner writes what they give back."""

    def submit(self, cell: Cell, dependencies: dict[str, Path], checkpoints: Checkpointing) -> None:
        """Start the cell (the local executor runs it to the end here)."""

    def collect(self, timeout: float) -> list[tuple[Cell, Outcome]]:
        """The cells finished since the last call, waiting up to `timeout` for one."""

    def running(self) -> list[Cell]:
        """The cells submitted and not yet collected."""

    def cancel(self) -> None:
        """Stop every running cell (Ctrl-C)."""

    def phases(self) -> dict[str, str] | None:
        """Cell id -> where and in which phase it runs, for a line per cell; None where the
        cells show their own progress in this process."""

    def close(self) -> None:
        """Release workers and connections, once the grid is done or stopped."""


class LocalExecutor:
    """Cells one after another, in this process (the default)."""

    def __init__(self, data_dir: Path | None, progress: Progress | None) -> None:
        self.data_dir, self.progress = data_dir, progress
        self._current: list[Cell] = []
        self._finished: list[tuple[Cell, Outcome]] = []

    def submit(self, cell: Cell, dependencies: dict[str, Path], checkpoints: Checkpointing) -> None:
        self._current = [cell]
        try:
            outcome: Outcome = run_cell(
                cell, self.data_dir, dependencies, self.progress, checkpoints
            )
        except Exception as error:  # a failing cell must not stop the grid
            error.add_note(traceback.format_exc())
            outcome = error
        self._finished.append((cell, outcome))
        self._current = []

    def collect(self, timeout: float) -> list[tuple[Cell, Outcome]]:
        finished, self._finished = self._finished, []
        return finished

    def running(self) -> list[Cell]:
        return self._current

    def cancel(self) -> None:
        """The running cell is stopped by the KeyboardInterrupt itself."""

    def phases(self) -> None:
        """The running cell shows its own progress bars."""

    def close(self) -> None:
        """Nothing to release."""


def make_executor(
    kind: str,
    ray: RayOptions | None,
    cpus_per_cell: int,
    data_dir: Path | None,
    plugins: tuple[str, ...],
    cells: list[Cell],
    progress: Progress | None,
) -> Executor:
    """The executor named `kind` (one of `EXECUTORS`) for these cells to run. "auto" runs them
    in worker processes on a machine without a GPU, and in this process with one, or when a
    cell needs a method or task registered in `__main__` (a script or notebook), which a
    spawned worker cannot import."""
    if kind == "auto":
        kind = "local" if _needs_this_process(cells) else "process"
    if kind == "ray":
        from bench.run.ray_executor import RayExecutor, RayOptions

        return RayExecutor(ray or RayOptions(), data_dir, plugins)
    if kind == "process":
        from bench.run.process_executor import ProcessExecutor, usable_cores

        workers = max(1, min(usable_cores() // cpus_per_cell, len(cells)))
        retries = ray.max_retries if ray is not None else 2
        return ProcessExecutor(data_dir, plugins, workers, cpus_per_cell, retries)
    return LocalExecutor(data_dir, progress)


def _needs_this_process(cells: list[Cell]) -> bool:
    import torch

    from bench.spec.registry import METHODS, TASKS

    if torch.cuda.is_available():
        return True
    entries = [METHODS.get(c.method) for c in cells] + [TASKS.get(c.task) for c in cells]
    return any(entry.__module__ == "__main__" for entry in entries)


def run_cell(*args: Any, **kwargs: Any) -> CellRecord:
    """`bench.engine.cell.run_cell`, imported once a cell runs: a rerun of a finished grid never
    imports the engine (torch, transformers)."""
    from bench.engine import cell

    return cell.run_cell(*args, **kwargs)
