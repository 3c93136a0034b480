"""Cells as Ray tasks: every CPU or GPU of one machine busy, or a whole cluster's.

`python -m bench run --executor ray` hands each claimed cell to a Ray task with its resources
(`--cpus-per-cell`, `--gpus-per-cell`: by default one GPU per cell where the cluster has GPUs,
else one CPU); torch in the task uses exactly its CPUs as threads. The task runs
`bench.engine.cell.run_cell` and returns the cell's record; the driver (`bench.run.runner`) writes
it, cell by cell, as cells finish. A task whose worker or node dies (kill -9, the OOM killer,
preemption) is retried up to `--max-retries` times, resuming from the cell's mid-cell checkpoint
when its folder (under the results directory) is on storage the nodes share; an exception inside the
cell is not retried but recorded as the cell's failure, as in the local executor.

What a task needs arrives with it or is where the driver checked it: the cells a hybrid reuses
travel as bytes through Ray's object store; the mini LM ships with the package; the data is read
from the same `--data-dir` path on every node (a shared file system, as clusters have: shipping
parsed XSum through the object store to every worker would cost more than reading it, and the
driver already validated that path).

The cells' phases reach the driver through a progress actor, which may die like any worker (kill
-9, the OOM killer): Ray restarts it, empty. The driver then says once that progress detail is
lost and shows each cell as submitted until it reports its next phase (for good, should the
actor stay dead); no cell waits for the actor or fails for it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.engine.record import STORED
from bench.errors import UserError
from bench.spec.settings import Cell

if TYPE_CHECKING:
    from bench.engine.training import Checkpointing

RUNTIME_ENV_VARS = ("BENCH_CACHE", "BENCH_DATA_DIR", "HF_HUB_OFFLINE", "HF_HOME")
READ_SECONDS = 2.0  # a progress actor slower than this to answer is treated as gone for that poll


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: a local Ray sized to this machine; "auto" or HOST:PORT
    cpus_per_cell: float | None = None  # default 1
    gpus_per_cell: float | None = None  # default 1 where the cluster has GPUs, else 0
    max_retries: int = 2


class RayExecutor:
    """Submits cells as Ray tasks and collects their records as they finish."""

    def __init__(self, options: RayOptions, data_dir: Path | None, plugins: tuple[str, ...]):
        try:
            import ray
        except ImportError:
            raise UserError(
                "--executor ray needs Ray: pip install -e '.[ray]' (or pip install ray)"
            ) from None
        self.ray, self.data_dir, self.plugins = ray, data_dir, plugins
        self.started_here = not ray.is_initialized()
        if self.started_here:
            env = {k: os.environ[k] for k in RUNTIME_ENV_VARS if k in os.environ}
            ray.init(
                address=options.address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                runtime_env={"env_vars": env},
            )
        gpus = options.gpus_per_cell
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        self.cpus, self.max_retries = options.cpus_per_cell or 1.0, options.max_retries
        self.task = ray.remote(run_remote)
        self.resources = {"num_cpus": self.cpus, "num_gpus": gpus, "max_retries": self.max_retries}
        # No CPU: a restart never waits behind the cells for one.
        self.board = ray.remote(PhaseBoard).options(num_cpus=0, max_restarts=-1).remote()
        self.board_id: str = ray.get(self.board.read.remote())[0]  # up before any cell reports
        self.detail_lost = False
        self.refs: dict[Any, Cell] = {}

    def submit(self, cell: Cell, dependencies: dict[str, Path], checkpoints: Checkpointing) -> None:
        reused = {
            role: {name: (folder / name).read_bytes() for name in ("cell.json", STORED)}
            for role, folder in dependencies.items()
        }
        # Named after the cell: `ray list tasks`, the dashboard and `ps` (ray::cell-ID) show it.
        ref = self.task.options(name=f"cell-{cell.id}", **self.resources).remote(
            cell,
            self.data_dir,
            reused,
            checkpoints,
            self.plugins,
            max(1, int(self.cpus)),
            self.board,
        )
        self.refs[ref] = cell

    def collect(self, timeout: float) -> list[tuple[Cell, Any]]:
        if not self.refs:
            return []
        ready, rest = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        if ready and rest:  # and every other one finished by now
            ready += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        finished = []
        for ref in ready:
            cell = self.refs.pop(ref)
            try:
                outcome = self.ray.get(ref)
            except self.ray.exceptions.RayError as error:  # its worker died on every try
                outcome = task_failure(error, self.max_retries)
            finished.append((cell, outcome))
        return finished

    def running(self) -> list[Cell]:
        return list(self.refs.values())

    def phases(self) -> dict[str, str]:
        """Cell id -> "host: phase" of the cells that workers are running; once the progress
        actor was lost (dead, restarting, restarted empty), every submitted cell, as "submitted"
        until it reports its next phase."""
        try:
            board_id, posted = self.ray.get(self.board.read.remote(), timeout=READ_SECONDS)
        except self.ray.exceptions.RayError as error:  # dead, restarting, or not answering
            self._lose_detail(f"Ray's progress actor is unreachable ({type(error).__name__})")
            board_id, posted = self.board_id, {}
        if board_id != self.board_id:
            self._lose_detail("Ray restarted its progress actor, which had died")
            self.board_id = board_id
        if not self.detail_lost:
            return posted
        return {cell.id: posted.get(cell.id, "submitted") for cell in self.refs.values()}

    def _lose_detail(self, why: str) -> None:
        """Say once that the cells' phases are no longer all known: on stderr, which the
        progress bars (set up by the caller) show above themselves."""
        if not self.detail_lost:
            print(
                f"progress detail lost: {why}; cells show as submitted until they report their "
                "next phase, and run on",
                file=sys.stderr,
            )
        self.detail_lost = True

    def cancel(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()


def task_failure(error: Exception, retries: int) -> Exception:
    """Why a cell's Ray task gave no record (its worker or node died on every try), in the one
    line the store and the summary show; Ray's whole message as a note."""
    from bench.engine.cell import CellFailed

    first = str(error).strip().splitlines()[0] if str(error).strip() else "no detail"
    failed = CellFailed(f"{type(error).__name__}, --max-retries {retries} spent: {first}")
    failed.add_note(str(error))
    return failed


class PhaseBoard:
    """A Ray actor where workers post which phase each running cell is in. Its id tells the
    driver a restarted board (empty) from the one it read before."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.phases: dict[str, str] = {}

    def post(self, cell: str, where: str) -> None:
        self.phases[cell] = where

    def read(self) -> tuple[str, dict[str, str]]:
        return self.id, dict(self.phases)


def post_phase(board: Any, cell: str, where: str) -> None:
    """Post a cell's phase without waiting: a dead or restarting board fails only the post's
    result, which nobody reads, and whatever Ray raises here must not fail the cell either."""
    from ray.exceptions import RayError

    with contextlib.suppress(RayError):
        board.post.remote(cell, where)


def run_remote(
    cell: Cell,
    data_dir: Path | None,
    reused: dict[str, dict[str, bytes]],
    checkpoints: Checkpointing,
    plugins: tuple[str, ...],
    threads: int,
    board: Any,
) -> Any:
    """The Ray task: run one cell on a worker; its record, or `CellFailed` with the reason."""
    import torch

    from bench.engine.cell import CellFailed, failure_reason, run_cell
    from bench.spec.registry import load_plugins

    torch.set_num_threads(threads)
    load_plugins(plugins)
    host = socket.gethostname()
    with tempfile.TemporaryDirectory(prefix="bench-reused-") as tmp:
        folders = {}
        for role, files in reused.items():
            folders[role] = Path(tmp) / role
            folders[role].mkdir()
            for name, content in files.items():
                (folders[role] / name).write_bytes(content)
        try:
            return run_cell(
                cell,
                data_dir,
                folders,
                checkpoints=checkpoints,
                on_phase=lambda phase: post_phase(board, cell.id, f"{host}: {phase}"),
            )
        except Exception as error:  # returned, not raised: Ray must not retry it
            failed = CellFailed(failure_reason(error))
            failed.add_note(traceback.format_exc())
            return failed
