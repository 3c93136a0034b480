"""Cells side by side in worker processes of this machine (the standard library's process pool).

On a CPU, one cell per core with one torch thread each beats one cell at a time with every core:
small models' matrix products scale poorly across threads (on this project's 2-core machine a
mini-e2e cell took 18.9 s on two threads and 28.3 s on one: two side by side finish in about 29 s
what one at a time does in 38), and a single-threaded cell keeps its pace when other work shares
the machine, where torch's spinning OpenMP threads collapse (`bench perf contention`: 1.04x
against 3.49x beside one busy process). A cell's
thread count is fixed (`--cpus-per-cell`, 1 by default), never taken from how many cells happen
to run, so that a cell's floats are the same whether it ran alone or in a grid.

Workers are spawned (no fork of a process holding torch threads), ignore Ctrl-C (the driver
kills them and records their cells as interrupted; a rerun resumes from their last checkpoint)
and post each cell's phase on a queue the driver reads. When a worker dies (kill -9, the OOM
killer), the pool breaks and every cell it ran is handed to a fresh pool, up to `max_retries`
times per cell, resuming from its checkpoint; then the cell fails with the reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.spec.settings import Cell

if TYPE_CHECKING:
    from bench.engine.training import Checkpointing
    from bench.run.executor import Outcome

_phases: Any = None  # a worker's end of the driver's phase queue (set by `_start_worker`)


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or `taskset`'s share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ProcessExecutor:
    """Runs cells in `workers` spawned processes, `threads` torch threads each."""

    def __init__(
        self,
        data_dir: Path | None,
        plugins: tuple[str, ...],
        workers: int,
        threads: int = 1,
        max_retries: int = 2,
    ) -> None:
        self.data_dir, self.plugins = data_dir, plugins
        self.workers, self.threads, self.max_retries = workers, threads, max_retries
        self.context = multiprocessing.get_context("spawn")
        self.queue = self.context.Queue()
        self.pool: ProcessPoolExecutor | None = None
        self.futures: dict[Future[Any], tuple[Cell, dict[str, Path], Checkpointing]] = {}
        self.tries: dict[str, int] = {}
        self.posted: dict[str, str] = {}
        self.pids: set[int] = set()

    def submit(self, cell: Cell, dependencies: dict[str, Path], checkpoints: Checkpointing) -> None:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=self.context,
                initializer=_start_worker,
                initargs=(self.queue, self.threads, self.plugins, os.getpid()),
            )
        future = self.pool.submit(_run_in_worker, cell, self.data_dir, dependencies, checkpoints)
        self.futures[future] = (cell, dependencies, checkpoints)
        self.tries[cell.id] = self.tries.get(cell.id, 0) + 1

    def collect(self, timeout: float) -> list[tuple[Cell, Outcome]]:
        if not self.futures:
            return []
        done, _ = wait(list(self.futures), timeout=timeout, return_when=FIRST_COMPLETED)
        finished: list[tuple[Cell, Outcome]] = []
        broken = []
        for future in done:
            cell, dependencies, checkpoints = self.futures.pop(future)
            try:
                finished.append((cell, future.result()))
            except BrokenProcessPool as error:
                broken.append((cell, dependencies, checkpoints, error))
        if broken:
            self._kill_workers()
            self.pool = None  # the next submission starts a fresh one
            for cell, dependencies, checkpoints, error in broken:
                if self.tries[cell.id] > self.max_retries:
                    finished.append((cell, _worker_died(error, self.max_retries)))
                else:
                    self.posted.pop(cell.id, None)
                    self.submit(cell, dependencies, checkpoints)
        return finished

    def running(self) -> list[Cell]:
        return [cell for cell, _, _ in self.futures.values()]

    def phases(self) -> dict[str, str]:
        """Cell id -> the phase its worker last posted (cells not started yet: none)."""
        self._read_queue()
        running = {cell.id for cell in self.running()}
        return {cell: phase for cell, phase in self.posted.items() if cell in running}

    def cancel(self) -> None:
        """Ctrl-C: the workers are killed (they ignore SIGINT); the driver then records the
        cells `running` still lists as interrupted."""
        self._kill_workers()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        self.queue.close()

    def _read_queue(self) -> None:
        while True:
            try:
                kind, key, value = self.queue.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            if kind == "pid":
                self.pids.add(key)
            else:
                self.posted[key] = value

    def _kill_workers(self) -> None:
        self._read_queue()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pids.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _worker_died(error: Exception, retries: int) -> Exception:
    from bench.engine.cell import CellFailed

    return CellFailed(
        f"its worker process died (killed, or out of memory) on every try, --max-retries "
        f"{retries} spent: {type(error).__name__}"
    )


def _start_worker(phases: Any, threads: int, plugins: tuple[str, ...], driver: int) -> None:
    """A worker's setup, before torch is imported: it dies with the driver, leaves Ctrl-C to
    it, takes its threads and the grid's plugins, and posts its pid so the driver can stop it."""
    global _phases
    _die_with(driver)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    from bench.spec.registry import load_plugins

    torch.set_num_threads(threads)
    load_plugins(plugins)
    _phases = phases
    phases.put(("pid", os.getpid(), ""))


def _die_with(driver: int) -> None:
    """On Linux, have the kernel kill this worker when the driver dies, kill -9 included: an
    orphan would go on writing its cell's checkpoints into a results directory that a rerun is
    settling (`prctl(PR_SET_PDEATHSIG, SIGKILL)`). Elsewhere a worker ends at its next task,
    when the pool's pipe is gone."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != driver:  # the driver died before the line above
        os._exit(1)


def _run_in_worker(
    cell: Cell,
    data_dir: Path | None,
    dependencies: dict[str, Path],
    checkpoints: Checkpointing,
) -> Outcome:
    """One cell in a worker: its record, or `CellFailed` with the reason (never raised: an
    exception's traceback would not survive the trip back whole)."""
    from bench.engine.cell import CellFailed, failure_reason, run_cell

    pid = os.getpid()
    try:
        return run_cell(
            cell,
            data_dir,
            dependencies,
            checkpoints=checkpoints,
            on_phase=lambda phase: _phases.put(("phase", cell.id, f"worker {pid}: {phase}")),
        )
    except Exception as error:
        failed = CellFailed(failure_reason(error))
        failed.add_note(traceback.format_exc())
        return failed
