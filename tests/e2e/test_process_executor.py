"""The process executor (the default on a CPU): cells side by side in spawned workers, one torch
thread each, as `bench run` runs them. A cell's outputs equal a one-thread run of it in the
driver's own process; a killed worker costs a retry that resumes from the checkpoint; Ctrl-C
leaves no worker behind."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import psutil
import pytest

from tests.runs import bench_process, check_consistent, finished, predictions

pytestmark = pytest.mark.slow


def workers(process) -> list[psutil.Process]:
    """The run's spawned workers (not the resource tracker, also a child)."""
    found = []
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def training(results: Path, process) -> list[psutil.Process]:
    """The workers once a cell has saved a checkpoint (`--checkpoint-minutes 0`: every step)."""
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None:
        if list((results / "cells").glob("*.checkpoint")) and (found := workers(process)):
            return found
        time.sleep(0.1)
    raise AssertionError(f"no cell seen training; the run said: {finished(process)[1]}")


def statuses(results: Path) -> dict[str, tuple[str, str | None]]:
    db = sqlite3.connect(results / "bench.sqlite")
    rows = db.execute("SELECT cell, status, error FROM runs").fetchall()
    db.close()
    return {cell: (status, error) for cell, status, error in rows}


@pytest.fixture(scope="module")
def in_workers(tmp_path_factory, tiny_grid_module) -> Path:
    results = tmp_path_factory.mktemp("process") / "r"
    code, err = finished(bench_process(tiny_grid_module, results, "--executor", "process"))
    assert code == 0, err
    assert "4 run, 0 already done, 0 failed" in err
    return results


@pytest.fixture(scope="module")
def tiny_grid_module(tmp_path_factory) -> Path:
    from tests.conftest import TINY_GRID

    path = tmp_path_factory.mktemp("grid") / "tiny.yaml"
    path.write_text(TINY_GRID)
    return path


def test_cells_in_workers_equal_a_one_thread_run_in_this_process(in_workers, tiny_grid_module):
    local = in_workers.parent / "local"
    code, err = finished(bench_process(tiny_grid_module, local, "--executor", "local"))
    assert code == 0, err
    assert predictions(in_workers) == predictions(local)  # OMP_NUM_THREADS=1 for the local run
    db = sqlite3.connect(in_workers / "bench.sqlite")
    threads = {
        json.loads(p)["hardware"]["torch_threads"]
        for (p,) in db.execute("SELECT provenance FROM runs")
    }
    db.close()
    assert threads == {1}


def test_a_killed_worker_costs_a_retry_resumed_from_its_checkpoint(in_workers, tiny_grid_module):
    results = in_workers.parent / "killed"
    process = bench_process(tiny_grid_module, results, "--executor", "process")
    training(results, process)[0].kill()
    code, err = finished(process)
    assert code == 0, err
    assert "4 run, 0 already done, 0 failed" in err
    assert {status for status, _ in statuses(results).values()} == {"done"}
    check_consistent(results, set())
    assert predictions(results) == predictions(in_workers)


def test_a_killed_worker_with_no_retries_left_fails_its_cells_only(tiny_grid_module, tmp_path):
    results = tmp_path / "r"
    process = bench_process(
        tiny_grid_module, results, "--executor", "process", "--max-retries", "0"
    )
    training(results, process)[0].kill()
    code, err = finished(process)
    assert code == 0, err
    failed = {c: e for c, (s, e) in statuses(results).items() if s == "failed"}
    assert failed and all("worker process died" in e for e in failed.values()), failed
    done = check_consistent(results, set())
    assert len(done) + len(failed) == 4


def test_ctrl_c_records_the_running_cells_and_leaves_no_worker(tiny_grid_module, tmp_path):
    results = tmp_path / "r"
    process = bench_process(tiny_grid_module, results, "--executor", "process")
    running = training(results, process)
    os.kill(process.pid, signal.SIGINT)
    code, err = finished(process)
    assert code == 130, err
    assert "interrupted" in err
    assert "interrupted" in {status for status, _ in statuses(results).values()}
    _, alive = psutil.wait_procs(running, timeout=10)
    assert not alive, f"workers left running: {alive}"
    check_consistent(results, set())
