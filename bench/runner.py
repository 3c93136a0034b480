"""The runner: the driver that turns cells into stored results, skipping the ones finished.

Per cell it marks the run started, hands the cell to `bench.cell.run_cell` (which computes a
`CellRecord` and writes nothing), and writes the record with `bench.store.write_record`: the
driver is the only writer of the store. A failing cell is recorded with its reason and the grid
goes on; Ctrl-C marks the running cell interrupted and stops, leaving every finished cell stored.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bench.cell import collect_provenance, run_cell
from bench.data import DEV, TRAIN
from bench.progress import Progress
from bench.registry import TASKS
from bench.spec import Cell
from bench.store import Store, cell_dir, write_record


@dataclass
class RunSummary:
    done: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)


def check_data(cells: list[Cell], data_dir: Path | None) -> None:
    """Load every split the cells need, so missing or malformed data stops a run (as a
    `UserError`) before anything is written; the task modules cache what they parse."""
    needed: dict[str, dict[str, None]] = {}  # task -> splits, in first-needed order
    for cell in cells:
        needed.setdefault(cell.task, dict.fromkeys((TRAIN, DEV))).update(dict.fromkeys(cell.splits))
    for name, splits in needed.items():
        task = TASKS.get(name)()
        for split in splits:
            task.load(split, data_dir)


def run_cells(
    cells: list[Cell],
    store: Store,
    results_dir: Path,
    data_dir: Path | None,
    force: bool = False,
    progress: Progress | None = None,
) -> RunSummary:
    summary = RunSummary()
    todo = [c for c in cells if force or store.status(c.id) != "done"]
    summary.skipped = [c for c in cells if c not in todo]
    grid_bar = (
        progress.add_task("grid", total=len(cells), completed=len(summary.skipped), info="")
        if progress
        else None
    )
    for cell in todo:
        if progress is not None:
            progress.update(grid_bar, info=cell.describe())
        store.start_cell(cell.id, cell.model_dump(mode="json"))
        started = time.time()
        try:
            folders = dependency_folders(cell, store, results_dir)
            record = run_cell(cell, data_dir, folders, progress)
            write_record(store, results_dir, record)
            for note in record.notes:
                _say(progress, note)
            summary.done.append(cell)
            _say(progress, f"done   {cell.describe()} ({time.time() - started:.0f}s)")
        except KeyboardInterrupt:
            store.fail_cell(cell.id, "interrupted", "interrupted by the user", collect_provenance())
            raise
        except Exception as error:  # a failing cell must not stop the grid
            reason = f"{type(error).__name__}: {error}"
            trace = reason + "\n" + traceback.format_exc()
            store.fail_cell(cell.id, "failed", trace, collect_provenance())
            summary.failed.append((cell, reason))
            _say(progress, f"failed {cell.describe()}: {reason}")
        if progress is not None:
            progress.advance(grid_bar)
    return summary


def dependency_folders(cell: Cell, store: Store, results_dir: Path) -> dict[str, Path]:
    """The folders of the stored cells a hybrid reuses (run before it by the grid)."""
    folders = {}
    for role, cell_id in cell.depends.items():
        status = store.status(cell_id) or "not run"
        if status != "done":
            raise RuntimeError(f"the {role} cell {cell_id} this cell reuses is {status}")
        folders[role] = cell_dir(results_dir, cell_id)
    return folders


def _say(progress: Progress | None, line: str) -> None:
    """A line per finished cell: above the bars on a terminal, the only output in a CI log."""
    if progress is not None:
        progress.console.print(line, highlight=False)
