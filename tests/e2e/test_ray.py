"""The Ray executor, on a local Ray with this machine's 2 CPUs: cells two at a time, results
equal to the local executor's, hybrids after their dependencies, Ctrl-C. Faults (killed workers,
a killed progress actor) are in `test_ray_faults.py`."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import HYBRID_GRID, SLOW_GRID
from tests.runs import alive, bench_process, check_consistent, finished, predictions, ray_processes

pytest.importorskip("ray", reason="the Ray executor needs the `ray` extra: pip install -e '.[ray]'")
pytestmark = pytest.mark.slow  # each run starts a local Ray (about 6 s) and its workers


def test_cells_run_two_at_a_time_with_the_local_executors_results(reference, tmp_path):
    grid, local = reference
    code, err = finished(bench_process(grid, tmp_path / "r", "--executor", "ray"))
    assert code == 0, err
    assert "4 run, 0 already done, 0 failed" in err
    check_consistent(tmp_path / "r", set())
    assert predictions(tmp_path / "r") == predictions(local)  # same bytes, same threads
    db = sqlite3.connect(tmp_path / "r" / "bench.sqlite")
    ran = sorted(
        (p["ran"]["from"], p["ran"]["until"])
        for (p,) in ((json.loads(row),) for (row,) in db.execute("SELECT provenance FROM runs"))
    )
    # On the workers, some cell began before another ended (a worker that starts late, its
    # imports slower than a tiny cell, still overlaps the other worker's next cell).
    assert any(later[0] < earlier[1] for i, earlier in enumerate(ran) for later in ran[i + 1 :])


def test_hybrids_run_after_the_cells_they_reuse(tmp_path):
    grid = tmp_path / "hybrids.yaml"
    grid.write_text(HYBRID_GRID)
    code, err = finished(bench_process(grid, tmp_path / "r", "--executor", "ray"))
    assert code == 0, err
    db = sqlite3.connect(tmp_path / "r" / "bench.sqlite")
    runs = {m: (s, f, st) for m, s, f, st in db.execute(
        "SELECT method, started_at, finished_at, status FROM runs")}  # fmt: skip
    assert {status for *_, status in runs.values()} == {"done"}
    for hybrid, reused in (("ensemble", ("prefix", "finetune")), ("cocktail", ("prefix",))):
        assert all(runs[hybrid][0] >= runs[r][1] for r in reused)


def test_without_ray_the_executor_says_how_to_get_it(monkeypatch, tmp_path):
    import builtins

    from bench.errors import UserError
    from bench.run.ray_executor import RayExecutor, RayOptions

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UserError, match=r"needs Ray: pip install -e '\.\[ray\]'"):
        RayExecutor(RayOptions(), Path(tmp_path), ())


def test_ctrl_c_cancels_the_running_tasks_and_records_them_interrupted(tmp_path):
    grid = tmp_path / "slow.yaml"  # cells of many epochs: Ctrl-C always finds them running
    grid.write_text(SLOW_GRID)
    process = bench_process(grid, tmp_path / "r", "--executor", "ray")
    deadline, workers = time.time() + 180, []
    while not workers and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
        workers = ray_processes("ray::cell-")
    assert workers, "no Ray worker ran a cell"
    time.sleep(1)
    workers = ray_processes("ray::cell-")  # by now, both
    process.send_signal(signal.SIGINT)
    code, err = finished(process)
    assert code == 130 and "interrupted: finished cells are stored" in err, err
    db = sqlite3.connect(tmp_path / "r" / "bench.sqlite")
    statuses = [s for (s,) in db.execute("SELECT status FROM runs")]
    assert "interrupted" in statuses and "running" not in statuses
    deadline = time.time() + 30
    while any(map(alive, workers)) and time.time() < deadline:  # Ray went down with the driver
        time.sleep(0.5)
    assert not any(map(alive, workers))
