"""The runner's promises: failures are recorded and the grid goes on; Ctrl-C loses nothing."""

from __future__ import annotations

import pytest

from bench.engine.training import TrainingDiverged
from bench.results.store import Store
from bench.run import executor, runner
from bench.spec.grid import expand, load_grid
from tests.records import fake_record


def fake_run_cell(failing: dict[int, BaseException]):
    calls = []

    def run_cell(cell, data_dir, dependencies, progress, checkpoints):
        calls.append(cell.id)
        if len(calls) in failing:
            raise failing[len(calls)]
        return fake_record(cell)

    return run_cell, calls


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path, tiny_grid, monkeypatch):
    cells = expand(load_grid(str(tiny_grid))[0])
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("tiny", "", [c.id for c in cells])
    run_cell, calls = fake_run_cell({2: TrainingDiverged("training loss is nan at step 3")})
    monkeypatch.setattr(executor, "run_cell", run_cell)
    summary = runner.run_cells(cells, store, tmp_path, None)
    assert len(calls) == 4 and len(summary.done) == 3
    assert summary.failed[0][1] == "TrainingDiverged: training loss is nan at step 3"
    assert store.status(cells[1].id) == "failed"
    assert "loss is nan" in store.runs("tiny")[1]["error"]

    run_cell, calls = fake_run_cell({})  # a rerun retries only the failed cell
    monkeypatch.setattr(executor, "run_cell", run_cell)
    summary = runner.run_cells(cells, store, tmp_path, None)
    assert calls == [cells[1].id] and len(summary.skipped) == 3


def test_ctrl_c_keeps_finished_cells_and_a_rerun_resumes(tmp_path, tiny_grid, monkeypatch):
    cells = expand(load_grid(str(tiny_grid))[0])
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("tiny", "", [c.id for c in cells])
    run_cell, _ = fake_run_cell({3: KeyboardInterrupt()})
    monkeypatch.setattr(executor, "run_cell", run_cell)
    with pytest.raises(KeyboardInterrupt):
        runner.run_cells(cells, store, tmp_path, None)
    assert [store.status(c.id) for c in cells] == ["done", "done", "interrupted", None]

    run_cell, calls = fake_run_cell({})
    monkeypatch.setattr(executor, "run_cell", run_cell)
    runner.run_cells(cells, store, tmp_path, None)
    assert calls == [cells[2].id, cells[3].id]
    assert all(store.status(c.id) == "done" for c in cells)
    assert len(store.results("tiny")) == 4


def test_force_reruns_finished_cells(tmp_path, tiny_grid, monkeypatch):
    cells = expand(load_grid(str(tiny_grid))[0])
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("tiny", "", [c.id for c in cells])
    run_cell, calls = fake_run_cell({})
    monkeypatch.setattr(executor, "run_cell", run_cell)
    runner.run_cells(cells, store, tmp_path, None)
    runner.run_cells(cells, store, tmp_path, None, force=True)
    assert len(calls) == 8 and len(store.results("tiny")) == 4
