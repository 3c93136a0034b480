"""Nothing lost, ever: kill -9 at random moments, two runners on one store, interrupted cells
resumed exactly, SIGTERM and a second Ctrl-C, failing writes, full or unwritable disks."""

from __future__ import annotations

import errno
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.engine.cell import failure_reason, run_cell
from bench.engine.training import Checkpointing
from bench.errors import UserError
from bench.results import store as store_module
from bench.results.store import Store, check_results_dir, owner_alive
from bench.run import executor, runner
from bench.spec.grid import expand, load_grid
from tests.conftest import SLOW_GRID, TINY_GRID
from tests.records import fake_record
from tests.runs import bench_process, check_consistent, finished, predictions

ROOT = Path(__file__).resolve().parents[2]
KILLS = 10


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_the_grid_ends_as_if_never_killed(
    reference, tmp_path
):
    grid, whole = reference
    results, done = tmp_path / "r", set()
    moments = random.Random(12).sample([x / 2 for x in range(2, 24)], KILLS)
    for moment in moments:
        process = bench_process(grid, results)
        time.sleep(moment)
        process.kill()  # SIGKILL: no handler runs
        process.wait()
        if (results / "bench.sqlite").exists():
            done = check_consistent(results, done)
            stale = [r for r in Store(results / "bench.sqlite", True).runs() if r["owner"]]
            assert all(r["status"] != "running" for r in stale)  # shown as interrupted
    code, err = finished(bench_process(grid, results))
    assert code == 0, err
    done = check_consistent(results, done)
    db = sqlite3.connect(results / "bench.sqlite")
    assert db.execute("SELECT count(*), count(DISTINCT cell) FROM runs").fetchone() == (4, 4)
    assert len(done) == 4 and not list((results / "cells").glob("*.checkpoint"))
    # Determinism, through kills and resumed checkpoints: the same bytes as the whole run.
    assert predictions(results) == predictions(whole)
    scores = "SELECT cell, split, metric, value FROM scores ORDER BY 1, 2, 3"
    assert (
        db.execute(scores).fetchall()
        == sqlite3.connect(whole / "bench.sqlite").execute(scores).fetchall()
    )


@pytest.mark.slow
def test_two_runners_on_one_results_dir_train_each_cell_once(reference, tmp_path):
    grid, whole = reference
    first, second = (bench_process(grid, tmp_path / "r") for _ in range(2))
    (code_1, err_1), (code_2, err_2) = finished(first), finished(second)
    assert code_1 == code_2 == 0, err_1 + err_2
    trained = [line for line in (err_1 + err_2).splitlines() if line.startswith("done   ")]
    assert len(trained) == 4, err_1 + err_2  # each cell trained once, by one of them
    assert "locked" not in err_1 + err_2 and "Traceback" not in err_1 + err_2
    check_consistent(tmp_path / "r", set())
    assert predictions(tmp_path / "r") == predictions(whole)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["finetune", "prefix"])
def test_an_interrupted_cell_resumes_to_exactly_the_uninterrupted_result(
    tmp_path, tiny_grid, method
):
    cell = next(c for c in expand(load_grid(str(tiny_grid))[0]) if c.method == method)
    whole = run_cell(cell, None)

    class Interrupted(Checkpointing):
        def save(self, state):
            super().save(state)
            if state["result"]["steps"] == 7:
                raise KeyboardInterrupt

    folder = tmp_path / "checkpoint"
    with pytest.raises(KeyboardInterrupt):
        run_cell(cell, None, checkpoints=Interrupted(folder, every_seconds=0))
    resumed = run_cell(cell, None, checkpoints=Checkpointing(folder, every_seconds=0))
    assert resumed.provenance["resumed_at_step"] == 7
    assert whole.provenance["resumed_at_step"] is None
    assert resumed.stored == whole.stored  # exactly the same weights
    assert resumed.predictions == whole.predictions
    assert resumed.losses == whole.losses and resumed.scores == whole.scores


@pytest.mark.slow
@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT, signal.SIGINT]])
def test_sigterm_and_a_double_ctrl_c_record_the_cell_interrupted(tmp_path, signals):
    grid = tmp_path / "slow.yaml"  # cells of many epochs: the signal always finds one running
    grid.write_text(SLOW_GRID)
    results = tmp_path / "r"
    process = bench_process(grid, results)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:  # until a cell is running
        time.sleep(0.5)
        if (results / "bench.sqlite").exists():
            store = Store(results / "bench.sqlite", readonly=True)
            running = any(r["status"] == "running" for r in store.runs())
            store.close()
            if running:
                break
    time.sleep(1)
    for sig in signals:
        process.send_signal(sig)
        time.sleep(0.05)
    code, err = finished(process)
    assert code == 130 and "interrupted: finished cells are stored" in err, err
    assert "Traceback" not in err
    statuses = {r["status"] for r in Store(results / "bench.sqlite", True).runs()}
    assert "running" not in statuses and "interrupted" in statuses


def test_a_write_that_fails_mid_cell_fails_that_cell_and_keeps_the_store_consistent(
    tmp_path, tiny_grid, monkeypatch
):
    cells = expand(load_grid(str(tiny_grid))[0])[:2]
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("tiny", TINY_GRID, [c.id for c in cells])
    monkeypatch.setattr(
        executor, "run_cell", lambda cell, *args: fake_record(cell, stored=b"weights")
    )
    real = store_module._write_synced

    def full_disk(path, content):
        if cells[1].id in str(path) and path.name.endswith(".jsonl"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, content)

    monkeypatch.setattr(store_module, "_write_synced", full_disk)
    summary = runner.run_cells(cells, store, tmp_path, None)
    assert [c.id for c in summary.done] == [cells[0].id]
    assert "No space left on device" in summary.failed[0][1]
    assert store.status(cells[1].id) == "failed" and store.status(cells[0].id) == "done"
    assert not list((tmp_path / "cells").glob(f"{cells[1].id}*"))  # nothing half-written
    assert len(store.results()) == 1


def test_stale_claims_expire_and_a_dead_local_owner_is_gone_at_once(monkeypatch):
    now = time.time()
    assert owner_alive(f"{os.uname().nodename}:{os.getpid()}", now)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    assert not owner_alive(f"{os.uname().nodename}:{dead}", now)
    assert owner_alive("another-host:1", now)  # elsewhere: alive while the lease runs
    assert not owner_alive("another-host:1", now - store_module.LEASE_SECONDS - 1)
    assert not owner_alive(None, None)


def test_unwritable_or_full_results_dirs_are_refused_before_anything_runs(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is not a directory"):
        check_results_dir(tmp_path / "file" / "results")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as patch:
        patch.setattr(store_module.tempfile, "TemporaryFile", read_only)
        with pytest.raises(UserError, match=r"cannot write in .*Read-only file system"):
            check_results_dir(tmp_path / "results")
    monkeypatch.setattr(
        store_module.shutil, "disk_usage", lambda path: type("U", (), {"free": 5 * 2**20})
    )
    with pytest.raises(UserError, match="only 5 MiB free"):
        check_results_dir(tmp_path / "results")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing created


def test_out_of_memory_fails_the_cell_with_what_to_change():
    reason = failure_reason(MemoryError("cannot allocate 12 GiB"))
    assert reason.startswith("MemoryError: cannot allocate 12 GiB (out of memory: lower")
    assert "train.batch_size" in reason and "decode.batch_size" in reason
    assert failure_reason(ValueError("bad\nsecond line")) == "ValueError: bad"
