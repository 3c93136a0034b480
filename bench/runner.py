"""The runner: the driver that turns cells into stored results, skipping the ones finished.

Per cell it takes a claim in the store (so that runners sharing a results directory each train a
cell once), renews it while the cell runs, hands the cell to `bench.cell.run_cell` (which
computes a `CellRecord`, writing only its own mid-cell checkpoints), and writes the record with
`bench.store.write_record`: the driver is the only writer of the store. A failing cell is
recorded with its reason and the grid goes on. Ctrl-C or SIGTERM marks the running cell
interrupted and stops, leaving every finished cell stored (and the running one's last
checkpoint, where a rerun resumes). Cells that another live runner holds are waited for.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cell import collect_provenance, failure_reason, run_cell
from bench.data import DEV, TRAIN
from bench.progress import Progress
from bench.registry import TASKS
from bench.spec import Cell
from bench.store import (
    HEARTBEAT_SECONDS,
    Store,
    cell_dir,
    checkpoint_dir,
    this_owner,
    write_record,
)
from bench.training import Checkpointing

CHECKPOINT_MINUTES = 10.0  # a running cell saves its training state this often
POLL_SECONDS = 2.0  # how often a runner looks again at cells another runner holds


@dataclass
class RunSummary:
    done: list[Cell] = field(default_factory=list)  # run here
    skipped: list[Cell] = field(default_factory=list)  # finished before, or by another runner
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
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
) -> RunSummary:
    """Run every cell not yet done (all with `force`), each once across the runners sharing
    the store; a running cell saves a resumable training state every `checkpoint_minutes`."""
    run = _Run(store, results_dir, data_dir, force, checkpoint_minutes, progress)
    pending = [c for c in cells if force or store.status(c.id) != "done"]
    run.summary.skipped = [c for c in cells if c not in pending]
    if progress is not None:
        run.bar = progress.add_task(
            "grid", total=len(cells), completed=len(run.summary.skipped), info=""
        )
    with interrupts_recorded():
        while pending:
            moved = False
            for cell in list(pending):
                waiting = {c.id for c in pending}
                if any(d in waiting or store.held(d) for d in cell.depends.values()):
                    continue  # a hybrid waits for the cells it reuses
                if store.claim(cell.id, cell.model_dump(mode="json"), run.owner, run.since, force):
                    run.one(cell)
                elif store.held(cell.id):
                    continue  # another live runner has it
                else:
                    _finished_elsewhere(cell, store, run.summary)
                pending.remove(cell)
                moved = True
                run.show(advance=1)
            if pending and not moved:
                run.show(info=f"waiting for {len(pending)} cells run elsewhere")
                time.sleep(POLL_SECONDS)
    return run.summary


@dataclass
class _Run:
    """One runner's pass over a grid: what it needs to run a cell, and what it did."""

    store: Store
    results_dir: Path
    data_dir: Path | None
    force: bool
    checkpoint_minutes: float
    progress: Progress | None
    owner: str = field(default_factory=this_owner)
    since: float = field(default_factory=time.time)
    summary: RunSummary = field(default_factory=RunSummary)
    bar: Any = None

    def one(self, cell: Cell) -> None:
        """Run a claimed cell and record what came of it."""
        self.show(info=cell.describe())
        started = time.time()
        folder = checkpoint_dir(self.results_dir, cell.id)
        if self.force:  # a forced rerun starts afresh
            shutil.rmtree(folder, ignore_errors=True)
        checkpoints = Checkpointing(folder, 60 * self.checkpoint_minutes)
        try:
            with heartbeat(self.store, cell.id, self.owner):
                dependencies = dependency_folders(cell, self.store, self.results_dir)
                record = run_cell(cell, self.data_dir, dependencies, self.progress, checkpoints)
                write_record(self.store, self.results_dir, record)
        except KeyboardInterrupt:
            ignore_interrupts()  # a second Ctrl-C must not cut the recording short
            self.store.fail_cell(cell.id, "interrupted", "interrupted", collect_provenance())
            raise
        except Exception as error:  # a failing cell must not stop the grid
            reason = failure_reason(error)
            trace = reason + "\n" + traceback.format_exc()
            self.store.fail_cell(cell.id, "failed", trace, collect_provenance())
            self.summary.failed.append((cell, reason))
            self.say(f"failed {cell.describe()}: {reason}")
            return
        for note in record.notes:
            self.say(note)
        self.summary.done.append(cell)
        self.say(f"done   {cell.describe()} ({time.time() - started:.0f}s)")

    def show(self, advance: int = 0, info: str | None = None) -> None:
        """Move the grid bar on and/or say what the runner does now."""
        if self.progress is None:
            return
        self.progress.update(self.bar, advance=advance)
        if info is not None:
            self.progress.update(self.bar, info=info)

    def say(self, line: str) -> None:
        """A line per finished cell: above the bars on a terminal, the only output in a CI log."""
        if self.progress is not None:
            self.progress.console.print(line, highlight=False)


def _finished_elsewhere(cell: Cell, store: Store, summary: RunSummary) -> None:
    """A cell another runner finished, or failed, while this one ran."""
    if store.status(cell.id) == "done":
        summary.skipped.append(cell)
        return
    run = next((r for r in store.runs() if r["cell"] == cell.id), None)
    error = (run or {}).get("error") or ""
    summary.failed.append((cell, error.splitlines()[0] if error else "failed in another runner"))


def dependency_folders(cell: Cell, store: Store, results_dir: Path) -> dict[str, Path]:
    """The folders of the stored cells a hybrid reuses (run before it by the grid)."""
    folders = {}
    for role, cell_id in cell.depends.items():
        status = store.status(cell_id) or "not run"
        if status != "done":
            raise RuntimeError(f"the {role} cell {cell_id} this cell reuses is {status}")
        folders[role] = cell_dir(results_dir, cell_id)
    return folders


@contextmanager
def heartbeat(store: Store, cell: str, owner: str) -> Iterator[None]:
    """Renew the claim on `cell` from a thread (its own connection) while the body runs."""
    stop = threading.Event()

    def beat() -> None:
        own = Store(store.path)
        try:
            while not stop.wait(HEARTBEAT_SECONDS):
                own.heartbeat(cell, owner)
        finally:
            own.close()

    thread = threading.Thread(target=beat, name=f"heartbeat {cell}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def interrupts_recorded() -> Iterator[None]:
    """SIGTERM (a scheduler's or `kill`'s polite stop) is handled as Ctrl-C, and the handlers
    are put back afterwards (an API user's notebook keeps its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def ignore_interrupts() -> None:
    """From the first interruption on, further Ctrl-C and SIGTERM are ignored while it is
    recorded (the CLI keeps ignoring them until it exits)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
