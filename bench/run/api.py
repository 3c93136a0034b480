"""The Python API, for notebooks and scripts: run a grid, and read results as a DataFrame.

    import bench

    run = bench.run_grid("mini", results_dir="results")      # as `python -m bench run --grid`
    frame = bench.load_results("results", grid="mini")       # one row per cell, split, metric

`import bench` stays light: these functions import the engine (torch) and pandas when called.
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from bench.run.ray_executor import RayOptions
    from bench.run.runner import RunSummary
    from bench.spec.settings import Cell, GridSpec


@dataclass
class GridRun:
    """What `run_grid` did: the grid as run, the cells run, skipped and failed, the report."""

    spec: GridSpec
    summary: RunSummary
    report: Path  # the report's index.html
    seconds: float


def run_grid(
    grid: str | Path = "mini",
    *,
    results_dir: str | Path = "results",
    data_dir: str | Path | None = None,
    model: str | None = None,
    overrides: tuple[str, ...] = (),
    seeds: list[int] | None = None,
    force: bool = False,
    plugins: tuple[str, ...] = (),
    console: Console | None = None,
    checkpoint_minutes: float = 10.0,
    executor: str = "auto",
    cpus_per_cell: int = 1,
    ray: RayOptions | None = None,
    track: tuple[str, ...] = (),
) -> GridRun:
    """Run a grid (a preset name or a YAML path): every cell not yet in `results_dir`'s store is
    trained and evaluated, then the grid's report is written. Bad input raises
    `bench.errors.UserError` before anything is written; Ctrl-C (KeyboardInterrupt) leaves every
    finished cell stored, and a running cell's training state (saved every
    `checkpoint_minutes`), where the next run resumes. `overrides` ("train.lr=1e-4", ...) and
    `seeds` change the grid as `run --set` and `--seeds` do (`bench.spec.overrides`).
    `executor`, as `run --executor` (`bench.run.executor.make_executor`): "auto", "process"
    (`cpus_per_cell` threads a cell), "local" or "ray"; `ray`: Ray's options and retries.
    `track`, as `run --track`: "mlflow", "mlflow=URI", "tensorboard", "tensorboard=DIR"
    (`bench.run.tracking`): each cell run here is logged there once stored."""
    from rich.console import Console

    from bench.progress import make_progress
    from bench.reports.report import write_report
    from bench.results.claims import check_claim_metrics
    from bench.results.paths import inside
    from bench.results.store import Store, check_results_dir
    from bench.run.executor import Executor, make_executor
    from bench.run.runner import run_cells
    from bench.run.signals import interrupts_kept
    from bench.run.tracking import make_trackers
    from bench.spec.grid import expand, load_grid

    results = Path(results_dir)
    _check_options(checkpoint_minutes, executor, cpus_per_cell)
    spec, spec_text = load_grid(str(grid), model, plugins, tuple(overrides), seeds)
    check_claim_metrics(spec)
    check_results_dir(results)
    trackers = make_trackers(track, results, spec.name)
    report_dir = inside(results, f"reports/{spec.name}")
    data = checked_data_dir(data_dir)
    cells = expand(spec)
    finished = set() if force else Store.finished_cells(results / "bench.sqlite")
    todo = [c for c in cells if c.id not in finished]
    _check_work(spec, todo, data)
    store = Store(results / "bench.sqlite")
    runner: Executor | None = None
    try:
        store.register_grid(spec.name, spec_text, [c.id for c in cells])
        started = time.time()
        with make_progress(console or Console(stderr=True)) as progress:
            if todo:
                runner = make_executor(
                    executor, ray, cpus_per_cell, data, (*plugins, *spec.plugins), todo, progress
                )
            summary = run_cells(
                cells,
                store,
                results,
                data,
                force=force,
                progress=progress,
                checkpoint_minutes=checkpoint_minutes,
                executor=runner,
                trackers=trackers,
            )
        with interrupts_kept():
            report = write_report(store, spec.name, report_dir)
    finally:
        store.close()
        if runner is not None:
            runner.close()
    return GridRun(spec, summary, report, time.time() - started)


def _check_work(spec: GridSpec, todo: list[Cell], data: Path | None) -> None:
    """The model loads, the inputs fit its window and the data is there, for the cells to run;
    the engine (torch, transformers) is imported only when there is work for it."""
    from bench.run.runner import check_data
    from bench.spec.grid import check_lengths
    from bench.spec.model_specs import window

    if todo:
        from bench.engine.loading import check_available, hub_window

        check_available(spec.model)
        check_lengths(todo, *(window(spec.model) or hub_window(spec.model)))
    check_data(todo, data)


def _check_options(checkpoint_minutes: float, executor: str, cpus_per_cell: int) -> None:
    from bench.errors import UserError
    from bench.run.executor import EXECUTORS

    if not math.isfinite(checkpoint_minutes) or checkpoint_minutes < 0:
        raise UserError(f"checkpoint_minutes {checkpoint_minutes} is not a number >= 0")
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if isinstance(cpus_per_cell, bool) or not isinstance(cpus_per_cell, int) or cpus_per_cell < 1:
        raise UserError(f"cpus_per_cell {cpus_per_cell!r} is not a whole number >= 1")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise UserError("--executor ray needs Ray: pip install -e '.[ray]' (or pip install ray)")


def checked_data_dir(data_dir: str | Path | None) -> Path | None:
    """The data directory, checked, as an absolute path (tasks cache parsed files by path; a
    notebook may change folder)."""
    from bench.errors import UserError
    from bench.results.paths import check_path_text

    if data_dir is None:
        return None
    data = Path(data_dir)
    check_path_text(data, "--data-dir")
    if not data.is_dir():
        raise UserError(f"--data-dir {data} is not a directory")
    return data.absolute()


def load_results(
    results_dir: str | Path = "results", grid: str | None = None, what: str = "scores"
) -> pd.DataFrame:
    """The finished cells' scores (or, `what="losses"`, their losses), read-only.

    Scores: one row per (cell, split, metric). Columns: grid, cell, task, split, ood (bool),
    tag (ID, OOD or all: a split mixing both), method, label, settings (dict), model,
    checkpoint, seed, n_train, metric, value / low / high (on the paper's scale, e.g. E2E BLEU
    x 100; `low`-`high` is the 95% bootstrap interval), n (inputs scored), trained_params,
    stored_params, total_params, stored_bytes, higher_is_better, row (the report's row label).
    `bench export --format csv|json` writes exactly these columns.

    Losses: one row per (cell, kind, step): grid, cell, task, method, label, settings, model,
    checkpoint, seed, n_train, kind (train: per optimizer step; dev: per epoch), step, value.
    """
    from bench.errors import UserError
    from bench.reports.frame import losses_frame, results_frame
    from bench.results.store import Store

    frames = {"scores": results_frame, "losses": losses_frame}
    if what not in frames:
        raise UserError(f"load_results: what={what!r}; choose scores or losses")
    store = Store.open_existing(Path(results_dir))
    try:
        return frames[what](store, grid)
    finally:
        store.close()
