"""Faults on the Ray executor: a worker killed mid-cell costs that cell's try (or, its retries
spent, that cell), a killed progress actor only progress detail; the rest of the grid is stored,
each cell once. The runs join one local Ray started here (started once: about 6 s), whose
processes descend from this test process, so a test finds and kills only its own."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.runs import bench_process, check_consistent, finished, predictions, ray_processes

ray = pytest.importorskip("ray", reason="the Ray executor needs the `ray` extra")
pytestmark = pytest.mark.slow

T = TypeVar("T")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, ...]]:
    """`bench run` options to run on the module's Ray."""
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield "--executor", "ray", "--ray-address", ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def wait_for(found: Callable[[], T | None], process: subprocess.Popen) -> T:
    """What `found` returns once it returns something, while the run goes on."""
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None:
        if value := found():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not seen while the run went on; it said: {finished(process)[1]}")


def cell_in_training(results: Path) -> tuple[str, int] | None:
    """A cell in its training phase (it saved a checkpoint after a step: `--checkpoint-minutes
    0`), and the pid of the Ray worker running it."""
    for folder in (results / "cells").glob("*.checkpoint"):
        cell = folder.name.removesuffix(".checkpoint")
        if workers := ray_processes(f"ray::cell-{cell}"):
            return cell, workers[0].pid
    return None


def runs(results: Path) -> dict[str, tuple[str, str | None]]:
    """Cell -> (status, error) of the grid's 4 cells, every one of them recorded."""
    db = sqlite3.connect(results / "bench.sqlite")
    rows = db.execute("SELECT cell, status, error FROM runs").fetchall()
    db.close()
    assert len(rows) == 4
    return {cell: (status, error) for cell, status, error in rows}


def test_a_worker_killed_mid_cell_is_retried_and_the_grid_completes(cluster, reference, tmp_path):
    grid, local = reference
    results = tmp_path / "r"
    process = bench_process(grid, results, *cluster)
    _, worker = wait_for(lambda: cell_in_training(results), process)
    os.kill(worker, signal.SIGKILL)
    code, err = finished(process)
    assert code == 0, err
    assert "4 run, 0 already done, 0 failed" in err
    assert {status for status, _ in runs(results).values()} == {"done"}
    check_consistent(results, set())
    assert predictions(results) == predictions(local)  # the retry resumed from the checkpoint


def test_a_worker_killed_with_no_retries_left_fails_only_its_cell(cluster, tiny_grid, tmp_path):
    results = tmp_path / "r"
    process = bench_process(tiny_grid, results, *cluster, "--max-retries", "0")
    killed, worker = wait_for(lambda: cell_in_training(results), process)
    os.kill(worker, signal.SIGKILL)
    code, err = finished(process)
    assert code == 0, err
    assert "3 run, 0 already done, 1 failed" in err
    stored = runs(results)
    status, error = stored.pop(killed)
    assert status == "failed"
    assert error.startswith("WorkerCrashedError, --max-retries 0 spent: The worker died"), error
    assert {status for status, _ in stored.values()} == {"done"}
    check_consistent(results, set(stored))


def test_a_killed_progress_actor_costs_only_progress_detail(cluster, tiny_grid, tmp_path):
    results = tmp_path / "r"
    process = bench_process(tiny_grid, results, *cluster)
    wait_for(lambda: cell_in_training(results), process)  # its workers post to the actor
    (board,) = ray_processes("ray::PhaseBoard")
    board.kill()  # SIGKILL
    wait_for(lambda: [p for p in ray_processes("ray::PhaseBoard") if p.pid != board.pid], process)
    code, err = finished(process)
    assert code == 0, err
    assert "4 run, 0 already done, 0 failed" in err
    assert err.count("progress detail lost") == 1, err
    assert {status for status, _ in runs(results).values()} == {"done"}
    check_consistent(results, set())
