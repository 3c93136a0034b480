"""The runner: the driver that turns cells into stored results, skipping the ones finished.

It claims each cell in the store (so that runners sharing a results directory each train a
cell once) and renews its claims while cells run, hands claimed cells to an executor, and writes
each finished cell's record with `bench.results.store.write_record` as it arrives: the driver is the
only writer of the store. The default executor runs cells one after another in this process;
`bench.run.ray_executor` runs them as Ray tasks, several at once. A cell that reuses others (a
hybrid) waits until they are done. A failing cell is recorded with its reason and the grid goes
on. Once a cell is stored, the driver logs it to the run's trackers (`bench.run.tracking`).
Ctrl-C or SIGTERM records the running cells as interrupted and stops, leaving every finished
cell stored (and the running ones' last checkpoints, where a rerun resumes).
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.engine.record import CellRecord
from bench.errors import UserError
from bench.progress import Progress
from bench.results.integrity import aside_dir, staging_dir
from bench.results.store import (
    HEARTBEAT_SECONDS,
    Store,
    cell_dir,
    cell_problems,
    checkpoint_dir,
    settle_cell,
    this_owner,
    write_record,
)
from bench.run.executor import Executor, LocalExecutor, Outcome
from bench.run.tracking import Tracker
from bench.spec.registry import TASKS
from bench.spec.settings import Cell
from bench.spec.task import DEV, TRAIN

if TYPE_CHECKING:
    pass

CHECKPOINT_MINUTES = 10.0  # a running cell saves its training state this often
POLL_SECONDS = 2.0  # how often a runner looks again at cells in flight or held elsewhere


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
            if not task.load(split, data_dir):
                raise UserError(
                    f"task {name!r}: its {split} split has no examples (a file with a header "
                    "only?); download the official files again"
                )


def run_cells(
    cells: list[Cell],
    store: Store,
    results_dir: Path,
    data_dir: Path | None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
    executor: Executor | None = None,
    trackers: list[Tracker] | None = None,
) -> RunSummary:
    """Run every cell not yet done or whose stored files are broken (all with `force`), each
    once across the runners sharing the store; a running cell saves a resumable training state
    every `checkpoint_minutes`. A done cell keeps its result until its rerun's record commits;
    each cell stored here is then logged to `trackers`."""
    run = _Run(store, results_dir, force, checkpoint_minutes, progress, list(trackers or ()))
    executor = executor or LocalExecutor(data_dir, progress)
    pending = run.to_run(cells)
    if progress is not None:
        run.bar = progress.add_task(
            "grid", total=len(cells), completed=len(run.summary.skipped), info=""
        )
    with interrupts_recorded(), claims_renewed(store, run.owner, executor.running), run.tracking():
        try:
            while pending or executor.running():
                moved = run.dispatch(pending, executor)
                finished = run.drain(executor, 0 if moved else POLL_SECONDS)
                run.show_running(executor)
                if not moved and not finished and not executor.running():
                    run.show(info=f"waiting for {len(pending)} cells run elsewhere")
                    time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            ignore_interrupts()  # a second Ctrl-C must not cut the recording short
            from bench.engine.cell import collect_provenance

            executor.cancel()
            for cell in executor.running():
                reason = "interrupted by the user"
                store.fail_cell(cell.id, "interrupted", reason, collect_provenance())
            raise
    return run.summary


@dataclass
class _Run:
    """One runner's pass over a grid: what it needs to hand out and record cells."""

    store: Store
    results_dir: Path
    force: bool
    checkpoint_minutes: float
    progress: Progress | None
    trackers: list[Tracker] = field(default_factory=list)  # opened at the first stored cell
    owner: str = field(default_factory=this_owner)
    since: float = field(default_factory=time.time)
    summary: RunSummary = field(default_factory=RunSummary)
    bar: Any = None
    started: dict[str, float] = field(default_factory=dict)
    lines: dict[str, Any] = field(default_factory=dict)  # running cell -> its progress line
    repairs: set[str] = field(default_factory=set)  # done cells rerun for their broken files
    opened: list[Tracker] = field(default_factory=list)

    def to_run(self, cells: list[Cell]) -> list[Cell]:
        """The cells to run: all with `force`; else those not done, and the done ones whose
        files are broken (one line each says what is wrong). The others are skipped."""
        pending = []
        for cell in cells:
            if not self.force and self.store.status(cell.id) == "done":
                problems = self.check(cell)
                if not problems:
                    self.summary.skipped.append(cell)
                    continue
                problem = "; ".join(problems)
                self.say(f"broken {cell.describe()} (cell {cell.id}): {problem}; running it again")
                self.repairs.add(cell.id)
            pending.append(cell)
        return pending

    def check(self, cell: Cell) -> list[str]:
        """What is wrong with a done cell's files (`bench.results.integrity`), once what a
        killed writer or a killed forced rerun left is settled, under this runner's claim. A
        cell another live runner holds, or finished since this one started, is whole."""
        out = cell_dir(self.results_dir, cell.id)
        leftovers = (staging_dir(out), aside_dir(out), checkpoint_dir(self.results_dir, cell.id))
        if self.store.held(cell.id):
            return []
        if any(p.exists() for p in leftovers):
            config = cell.model_dump(mode="json")
            if not self.store.claim(cell.id, config, self.owner, self.since, force=True):
                return []
            try:
                settle_cell(self.store, self.results_dir, cell.id)
                shutil.rmtree(leftovers[2], ignore_errors=True)  # a dropped rerun's checkpoint
            finally:
                self.store.release(cell.id, self.owner)
        return cell_problems(self.store, self.results_dir, cell.id)

    def dispatch(self, pending: list[Cell], executor: Executor) -> bool:
        """Claim and submit every pending cell that can start; True when any cell moved."""
        moved = False
        waiting = {c.id for c in pending}
        for cell in list(pending):
            if any(d in waiting or self.store.held(d) for d in cell.depends.values()):
                continue  # a hybrid waits for the cells it reuses
            force = self.force or cell.id in self.repairs
            if self.store.claim(
                cell.id, cell.model_dump(mode="json"), self.owner, self.since, force
            ):
                pending.remove(cell)
                waiting.discard(cell.id)
                self.submit(cell, executor)
                self.drain(executor, 0)  # the local executor's cell is written before the next
            elif self.store.held(cell.id):
                continue  # another live runner has it
            else:
                pending.remove(cell)
                waiting.discard(cell.id)
                self.finished_elsewhere(cell)
            moved = True
        return moved

    def submit(self, cell: Cell, executor: Executor) -> None:
        self.show(info=cell.describe())
        self.started[cell.id] = time.time()
        folder = checkpoint_dir(self.results_dir, cell.id)
        if self.force:  # a forced rerun starts afresh
            shutil.rmtree(folder, ignore_errors=True)
        try:
            dependencies = dependency_folders(cell, self.store, self.results_dir)
        except RuntimeError as error:
            self.record(cell, error)
            return
        from bench.engine.training import Checkpointing  # torch: only once a cell is to run

        executor.submit(cell, dependencies, Checkpointing(folder, 60 * self.checkpoint_minutes))

    def drain(self, executor: Executor, timeout: float) -> bool:
        """Record the cells the executor finished (waiting up to `timeout` for one)."""
        finished = executor.collect(timeout)
        for cell, outcome in finished:
            self.record(cell, outcome)
        return bool(finished)

    def record(self, cell: Cell, outcome: Outcome) -> None:
        """Write a finished cell, or record why it failed; the grid goes on either way."""
        if isinstance(outcome, CellRecord):
            try:
                write_record(self.store, self.results_dir, outcome)
            except OSError as error:  # a full disk, say: this cell fails, the store stays whole
                outcome = error
        if isinstance(outcome, Exception):
            from bench.engine.cell import collect_provenance, failure_reason

            reason = failure_reason(outcome)
            trace = "\n".join([reason, *getattr(outcome, "__notes__", [])])
            self.store.fail_cell(cell.id, "failed", trace, collect_provenance())
            self.summary.failed.append((cell, reason))
            self.say(f"failed {cell.describe()}: {reason}")
        else:
            for note in outcome.notes:
                self.say(note)
            self.summary.done.append(cell)
            seconds = time.time() - self.started.get(cell.id, time.time())
            self.say(f"done   {cell.describe()} ({seconds:.0f}s)")
            self.track(outcome)
        self.show(advance=1)

    def track(self, record: CellRecord) -> None:
        """Log a stored cell to each tracker, opening it first; a tracker that fails to open
        is dropped for this run, one that fails to log skips the cell, each with a warning."""
        for tracker in list(self.trackers):
            if tracker not in self.opened:
                try:
                    tracker.open()
                except Exception as error:
                    self.trackers.remove(tracker)
                    self.say(f"warning: {tracker.name} is off for this run: {_reason(error)}")
                    continue
                self.opened.append(tracker)
            try:
                tracker.log_cell(record, cell_dir(self.results_dir, record.cell.id))
            except Exception as error:
                self.say(
                    f"warning: {tracker.name} did not log {record.cell.describe()}: "
                    f"{_reason(error)}"
                )

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """The trackers opened during the run are closed at its end, however it ends."""
        try:
            yield
        finally:
            for tracker in self.opened:
                try:
                    tracker.close()
                except Exception as error:
                    self.say(f"warning: {tracker.name} did not close: {_reason(error)}")

    def finished_elsewhere(self, cell: Cell) -> None:
        """A cell another runner finished, or failed, while this one ran."""
        if self.store.status(cell.id) == "done":
            self.summary.skipped.append(cell)
        else:
            error = (self.store.run(cell.id) or {}).get("error") or "failed in another runner"
            self.summary.failed.append((cell, error.splitlines()[0]))
        self.show(advance=1)

    def show(self, advance: int = 0, info: str | None = None) -> None:
        """Move the grid bar on and/or say what the runner does now."""
        if self.progress is None:
            return
        self.progress.update(self.bar, advance=advance)
        if info is not None:
            self.progress.update(self.bar, info=info)

    def show_running(self, executor: Executor) -> None:
        """One line per cell running on a worker: where, and in which phase."""
        if self.progress is None:
            return
        where = executor.phases()
        if where is None:
            return
        running = {cell.id: cell for cell in executor.running()}
        for cell_id in set(self.lines) - set(running):
            self.progress.remove_task(self.lines.pop(cell_id))
        for cell_id, cell in running.items():
            if cell_id not in self.lines:
                self.lines[cell_id] = self.progress.add_task(
                    f"  {cell.describe()}", total=None, info=""
                )
            self.progress.update(self.lines[cell_id], info=where.get(cell_id, "queued"))

    def say(self, line: str) -> None:
        """A line per finished cell: above the bars on a terminal, the only output in a CI log."""
        if self.progress is not None:
            self.progress.console.print(line, highlight=False, markup=False)  # labels, reasons


def _reason(error: Exception) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def dependency_folders(cell: Cell, store: Store, results_dir: Path) -> dict[str, Path]:
    """The folders of the stored cells a hybrid reuses (run before it by the grid), whose files
    must be the ones stored with them."""
    folders = {}
    for role, cell_id in cell.depends.items():
        status = store.status(cell_id) or "not run"
        if status != "done":
            raise RuntimeError(f"the {role} cell {cell_id} this cell reuses is {status}")
        problems = cell_problems(store, results_dir, cell_id)
        if problems:
            raise RuntimeError(
                f"the {role} cell {cell_id} this cell reuses is broken: {problems[0]}"
            )
        folders[role] = cell_dir(results_dir, cell_id)
    return folders


@contextmanager
def claims_renewed(store: Store, owner: str, running: Callable[[], list[Cell]]) -> Iterator[None]:
    """Renew the claims on the running cells from a thread (with its own connection)."""
    stop = threading.Event()

    def beat() -> None:
        own = Store(store.path)
        try:
            while not stop.wait(HEARTBEAT_SECONDS):
                for cell in list(running()):
                    own.heartbeat(cell.id, owner)
        finally:
            own.close()

    thread = threading.Thread(target=beat, name="claims", daemon=True)
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
