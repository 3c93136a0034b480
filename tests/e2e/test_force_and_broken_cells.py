"""Finished results never vanish: `run --force` killed -9 at any moment keeps every finished cell
(old or new, each whole), and a finished cell whose files were deleted or changed is found,
said, and run again; `report` and `export` name such cells and write nothing."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from bench.engine.record import STORED
from bench.progress import make_progress
from bench.results import store as store_module
from bench.results.store import (
    Store,
    broken_cells,
    cell_dir,
    cell_problems,
    predictions_file,
)
from bench.run import executor, runner
from bench.spec.grid import expand, load_grid
from bench.spec.settings import Cell
from tests.records import fake_record
from tests.runs import bench, bench_process, check_consistent, finished, predictions

OLD = {"stored": b"old weights", "bleu": 1.0, "n": 1}
NEW = {"stored": b"new weights, longer", "bleu": 2.0, "n": 2}


def fake_cells(record: dict, calls: list[str]) -> Callable:
    """A stand-in for `run_cell` that returns `record` made up for each cell, and notes it."""

    def run_cell(cell, data_dir, dependencies, progress, checkpoints):
        calls.append(cell.id)
        return fake_record(cell, **record)

    return run_cell


def run(
    cells: list[Cell], results: Path, record: dict, make: Callable = fake_cells, **options
) -> tuple[list[str], str]:
    """The runner over `cells`, each cell's record made up (`record`, by `make`): the cells it
    ran, and what it printed."""
    calls: list[str] = []
    real, executor.run_cell = executor.run_cell, make(record, calls)
    out = io.StringIO()
    store = Store(results / "bench.sqlite")
    try:
        store.register_grid("tiny", "", [c.id for c in cells])
        progress = make_progress(Console(file=out, width=1000, color_system=None))
        with progress:
            runner.run_cells(cells, store, results, None, progress=progress, **options)
    finally:
        store.close()
        executor.run_cell = real
    return calls, out.getvalue()


def results_of(results: Path, cells: list[Cell]) -> list[str]:
    """Which result each cell holds, "old" or "new", after checking that every cell is done and
    that its rows, digests, predictions and weights are all of that one result."""
    store = Store(results / "bench.sqlite", readonly=True)
    try:
        which = []
        for cell in cells:
            assert store.status(cell.id) == "done"
            assert cell_problems(store, results, cell.id, full=True) == []
            scores = {row["value"] for row in store.results() if row["cell"] == cell.id}
            weights = (cell_dir(results, cell.id) / STORED).read_bytes()
            lines = predictions_file(cell_dir(results, cell.id), "test").read_text().splitlines()
            held = (scores, weights, len(lines))
            assert held in [({r["bleu"]}, r["stored"], r["n"]) for r in (OLD, NEW)], held
            which.append("old" if weights == OLD["stored"] else "new")
        return which
    finally:
        store.close()


def leftovers(results: Path) -> list[str]:
    return sorted(p.name for p in (results / "cells").iterdir() if "." in p.name)


@pytest.fixture
def cells(tiny_grid) -> list[Cell]:
    return expand(load_grid(str(tiny_grid))[0])


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def after_second_call(owner: object, name: str) -> Callable:
    """Replace `owner.name` so that the process is killed -9 once its second call returns."""
    real, count = getattr(owner, name), []

    def hooked(*args, **kwargs):
        value = real(*args, **kwargs)
        count.append(1)
        if len(count) == 2:
            die()
        return value

    setattr(owner, name, hooked)
    return fake_cells


def training_killed(record: dict, calls: list[str]) -> Callable:
    """A `run_cell` stand-in whose second cell is killed -9 once it saved a checkpoint."""
    made_up = fake_cells(record, calls)

    def run_cell(cell, data_dir, dependencies, progress, checkpoints):
        if calls:
            checkpoints.folder.mkdir(parents=True)
            (checkpoints.folder / "training.pt").write_bytes(b"state")
            die()
        return made_up(cell, data_dir, dependencies, progress, checkpoints)

    return run_cell


# Each moment of a forced rerun, as the hook that kills the child there (at the grid's second
# cell, the first one replaced already; it returns the `run_cell` stand-in's maker), and what
# the kill leaves beside the cells' folders.
MOMENTS = {
    "claimed": (lambda: after_second_call(Store, "claim"), []),
    "training": (lambda: training_killed, [".checkpoint"]),
    "staged": (lambda: after_second_call(store_module, "_write_cell_files"), [".partial"]),
    "swapped": (lambda: after_second_call(store_module, "swap_in"), [".old"]),
    "committed": (lambda: after_second_call(Store, "finish_cell"), [".old"]),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill_9_during_a_forced_rerun_keeps_every_finished_cell(cells, tmp_path, moment):
    results = tmp_path / "r"
    run(cells, results, OLD)
    hook, left = MOMENTS[moment]
    child = os.fork()  # the runner, killed -9 by the hook: a process of its own
    if child == 0:
        try:
            run(cells, results, NEW, hook(), force=True)
        finally:
            os._exit(3)  # not killed: the hook missed its moment
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    assert leftovers(results) == [cells[1].id + suffix for suffix in left]
    store = Store(results / "bench.sqlite", readonly=True)
    assert all(store.status(c.id) == "done" for c in cells)  # no finished cell lost
    broken = broken_cells(store, results)  # as `report` says it, changing nothing
    store.close()
    if moment == "swapped":  # the new folder in place, the old rows: the old folder is aside
        assert [(b.cell, b.problems) for b in broken] == [
            (cells[1].id, [f"a rerun killed mid-swap left its stored files in {cells[1].id}.old"])
        ]
    else:
        assert broken == []
        check_consistent(results, {c.id for c in cells})

    calls, out = run(cells, results, NEW)  # a plain rerun settles what the kill left, only
    assert calls == [] and "broken" not in out, out
    second = "new" if moment == "committed" else "old"
    assert results_of(results, cells) == ["new", second, "old", "old"]
    assert leftovers(results) == []


@pytest.mark.slow
def test_the_cli_killed_mid_training_of_a_forced_rerun_keeps_the_grid(reference, tmp_path):
    grid, whole = reference
    results = tmp_path / "r"
    shutil.copytree(whole, results, ignore=shutil.ignore_patterns("reports"))
    done = check_consistent(results, set())
    process = bench_process(grid, results, "--force")
    deadline = time.time() + 120
    while not list((results / "cells").glob("*.checkpoint")) and process.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    process.kill()  # SIGKILL, mid-training
    assert process.wait() == -signal.SIGKILL
    assert check_consistent(results, done) == done
    code, err = finished(bench_process(grid, results))
    assert code == 0 and "0 run, 4 already done" in err, err
    assert leftovers(results) == [] and predictions(results) == predictions(whole)


def test_a_deleted_folder_and_a_changed_predictions_file_are_said_and_run_again(cells, tmp_path):
    results = tmp_path / "r"
    run(cells, results, OLD)
    shutil.rmtree(cell_dir(results, cells[1].id))
    path = predictions_file(cell_dir(results, cells[2].id), "test")
    path.write_text(path.read_text().replace("an output", "an 0utput"))  # the same size
    calls, out = run(cells, results, NEW)
    assert calls == [cells[1].id, cells[2].id]
    lines = [line for line in out.splitlines() if line.startswith("broken")]
    assert lines == [
        f"broken {cells[1].describe()} (cell {cells[1].id}): its folder "
        f"{cell_dir(results, cells[1].id)} is missing; running it again",
        f"broken {cells[2].describe()} (cell {cells[2].id}): predictions/test.jsonl differs "
        "from its recorded sha256; running it again",
    ]
    assert results_of(results, cells) == ["old", "new", "new", "old"]


def test_a_cell_stored_before_digests_is_checked_for_its_files(cells, tmp_path):
    results = tmp_path / "r"
    run(cells, results, OLD)
    store = Store(results / "bench.sqlite")
    store.db.execute("DELETE FROM files")  # as a store of version 3 has them
    store.close()
    predictions_file(cell_dir(results, cells[0].id), "test").write_text("changed\n")
    (cell_dir(results, cells[3].id) / STORED).unlink()
    calls, out = run(cells, results, NEW)
    assert calls == [cells[3].id] and "stored.safetensors is missing" in out


@pytest.mark.parametrize("failing", ["cell", "commit"])
def test_a_forced_rerun_that_fails_keeps_the_finished_result(cells, tmp_path, monkeypatch, failing):
    results = tmp_path / "r"
    run(cells, results, OLD)

    def fails(*args, **kwargs):
        raise OSError(28, "No space left on device")

    make = fake_cells
    if failing == "cell":
        make = lambda record, calls: fails  # noqa: E731
    else:  # the new folder is swapped in, then its rows do not commit
        monkeypatch.setattr(Store, "finish_cell", fails)
    _, out = run(cells, results, NEW, make, force=True)
    assert out.count("No space left on device") == 4, out
    monkeypatch.undo()
    assert results_of(results, cells) == ["old"] * 4 and leftovers(results) == []


def test_report_and_export_name_broken_cells_and_write_nothing(reference, tmp_path):
    _, whole = reference
    results = tmp_path / "r"
    shutil.copytree(whole, results, ignore=shutil.ignore_patterns("reports"))
    store = Store(results / "bench.sqlite", readonly=True)
    ids = [run["cell"] for run in store.runs("tiny")]
    store.close()
    shutil.rmtree(cell_dir(results, ids[0]))
    path = predictions_file(cell_dir(results, ids[3]), "test_seen")
    path.write_bytes(path.read_bytes().replace(b"a", b"b", 1))
    before = snapshot(results)
    report = bench("report", "--results-dir", str(results))
    export = bench("export", "--results-dir", str(results), "--format", "csv")
    for command in (report, export):
        assert command.returncode == 0, command.stderr
        broken = [line for line in command.stderr.splitlines() if line.startswith("broken: ")]
        assert len(broken) == 2, command.stderr
        assert f"(cell {ids[0]}): its folder" in broken[0] and "is missing" in broken[0]
        assert f"(cell {ids[3]}): predictions/test_seen.jsonl differs" in broken[1]
    assert snapshot(results) == before


def snapshot(results: Path) -> dict[str, str]:
    """Every file of a results directory but its reports, by path: its sha256."""
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file() and "reports" not in p.relative_to(results).parts
    }
