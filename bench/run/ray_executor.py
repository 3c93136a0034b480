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
"""

from __future__ import annotations

import os
import socket
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.engine.record import STORED
from bench.errors import UserError
from bench.spec.settings import Cell

if TYPE_CHECKING:
    from bench.engine.training import Checkpointing

RUNTIME_ENV_VARS = ("BENCH_CACHE", "BENCH_DATA_DIR", "HF_HUB_OFFLINE", "HF_HOME")


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
        self.cpus = options.cpus_per_cell or 1.0
        self.task = ray.remote(run_remote).options(
            num_cpus=self.cpus, num_gpus=gpus, max_retries=options.max_retries
        )
        self.board = ray.remote(PhaseBoard).remote()
        self.refs: dict[Any, Cell] = {}

    def submit(self, cell: Cell, dependencies: dict[str, Path], checkpoints: Checkpointing) -> None:
        reused = {
            role: {name: (folder / name).read_bytes() for name in ("cell.json", STORED)}
            for role, folder in dependencies.items()
        }
        ref = self.task.remote(
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
            except self.ray.exceptions.RayError as error:  # retries spent, or cancelled
                outcome = RuntimeError(f"the Ray task failed: {str(error).splitlines()[0]}")
            finished.append((cell, outcome))
        return finished

    def running(self) -> list[Cell]:
        return list(self.refs.values())

    def phases(self) -> dict[str, str]:
        """Cell id -> "host: phase" of the cells that workers are running."""
        return self.ray.get(self.board.read.remote())

    def cancel(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()


class PhaseBoard:
    """A Ray actor where workers post which phase each running cell is in."""

    def __init__(self) -> None:
        self.phases: dict[str, str] = {}

    def post(self, cell: str, where: str) -> None:
        self.phases[cell] = where

    def read(self) -> dict[str, str]:
        return dict(self.phases)


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
                on_phase=lambda phase: board.post.remote(cell.id, f"{host}: {phase}"),
            )
        except Exception as error:  # returned, not raised: Ray must not retry it
            failed = CellFailed(failure_reason(error))
            failed.add_note(traceback.format_exc())
            return failed
