"""What the machine and odd-but-valid names do to a run: each ends as the README says.

Runs are the real command line in-process with cells faked (`bench.run.executor.run_cell`
returns a record in milliseconds): what is tested is the harness around the cells.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from bench.cli import main
from bench.results.store import Store
from bench.run import executor
from tests.conftest import TINY_GRID
from tests.records import fake_record


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`python -m bench ARGS` in this process: (exit status, stderr)."""
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    monkeypatch.setenv("COLUMNS", "300")
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


@pytest.fixture
def fast_cells(tmp_path, monkeypatch):
    """Cells that finish at once (in this process, where the stand-in is); the working folder is
    tmp_path."""
    monkeypatch.setattr(executor, "run_cell", lambda cell, *args: fake_record(cell, n=2))
    monkeypatch.setattr(executor, "_needs_this_process", lambda cells: True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.yaml").write_text(TINY_GRID)


def test_labels_with_markup_are_printed_as_written(tmp_path, fast_cells, monkeypatch, capsys):
    grid = TINY_GRID.replace("  - name: prefix\n", "  - name: prefix\n    label: 'p[/]x [bold]'\n")
    (tmp_path / "g.yaml").write_text(grid)
    code, err = cli(monkeypatch, capsys, "run", "--grid", "g.yaml", "--results-dir", "r")
    assert code == 0, err
    assert "p[/]x [bold]" in err and "4 run, 0 already done, 0 failed" in err
    code, err = cli(monkeypatch, capsys, "report", "--results-dir", "r")
    assert code == 0, err


def test_a_results_dir_named_with_uri_characters_works_and_nothing_strays(
    tmp_path, fast_cells, monkeypatch, capsys
):
    name = "r#1?mode=rw%41"
    code, err = cli(monkeypatch, capsys, "run", "--grid", "g.yaml", "--results-dir", name)
    assert code == 0, err
    for command in (("report",), ("export", "--format", "csv")):
        code, err = cli(monkeypatch, capsys, *command, "--results-dir", name)
        assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml", name]
    assert len(Store(tmp_path / name / "bench.sqlite", readonly=True).results("tiny")) == 4


def test_a_store_on_a_read_only_mount_is_read(tmp_path, fast_cells, monkeypatch, capsys):
    code, err = cli(monkeypatch, capsys, "run", "--grid", "g.yaml", "--results-dir", "r")
    assert code == 0, err
    mount = tmp_path / "mount"
    mount.mkdir()
    bound = subprocess.run(["mount", "--bind", "-o", "ro", str(tmp_path / "r"), str(mount)],
                           capture_output=True, text=True)  # fmt: skip
    if bound.returncode != 0:
        pytest.skip(f"no read-only bind mount here: {bound.stderr.strip()}")
    try:
        (tmp_path / "r" / "bench.sqlite-shm").unlink(missing_ok=True)
        assert not (mount / "bench.sqlite-shm").exists()
        code, err = cli(monkeypatch, capsys, "export", "--results-dir", "mount", "--format", "csv")
        assert code == 0, err
        code, err = cli(monkeypatch, capsys, "run", "--grid", "g.yaml", "--results-dir", "mount")
        assert code == 2 and "cannot write in mount" in err, err
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_a_full_disk_while_a_cell_is_recorded_is_one_line_and_a_rerun_finishes(
    tmp_path, fast_cells, monkeypatch, capsys
):
    """SQLite's own SQLITE_FULL (the page limit set to the pages in use) on the second cell,
    whose 5,000 loss points need new pages."""
    curve = {"train": [(step, 1.0) for step in range(5000)]}
    monkeypatch.setattr(
        executor, "run_cell", lambda cell, *args: fake_record(cell, n=2, losses=curve)
    )
    real = Store.finish_cell
    calls = []

    def full(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            self.db.execute(f"PRAGMA max_page_count={pages}")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "finish_cell", full)
    code, err = cli(monkeypatch, capsys, "run", "--grid", "g.yaml", "--results-dir", "r")
    assert code == 1, err
    assert err.strip().splitlines()[-1] == (
        "error: the results database cannot grow (disk full): free space and rerun (finished "
        "cells are kept)"
    ), err
    assert "Traceback" not in err
    assert len(Store.finished_cells(tmp_path / "r" / "bench.sqlite")) == 1
    monkeypatch.setattr(Store, "finish_cell", real)
    code, err = cli(monkeypatch, capsys, "run", "--grid", "g.yaml", "--results-dir", "r")
    assert code == 0 and "3 run, 1 already done" in err, err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_swallowed_while_the_report_renders_still_ends_the_run_as_interrupted(
    tmp_path, fast_cells, monkeypatch, capsys
):
    """A library's `__del__` that catches the KeyboardInterrupt (Python prints and drops an
    exception raised in `__del__`) must not turn Ctrl-C into exit 0."""
    from bench.reports import report

    class Swallows:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)

    real = report._render

    def render(*args, **kwargs):
        Swallows()  # collected at once: SIGINT arrives inside its __del__
        return real(*args, **kwargs)

    monkeypatch.setattr(report, "_render", render)
    code, err = cli(monkeypatch, capsys, "run", "--grid", "g.yaml", "--results-dir", "r")
    assert code == 130 and "interrupted" in err, err
    assert "Traceback" not in err.replace("Exception ignored in", "")
    assert len(Store.finished_cells(tmp_path / "r" / "bench.sqlite")) == 4


def test_the_disk_full_line_comes_from_sqlite_itself():
    """The page-limit trick above is SQLite's real SQLITE_FULL, which the CLI names."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x)")
    db.execute("PRAGMA max_page_count=2")
    with pytest.raises(sqlite3.OperationalError) as error:
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 4000,)] * 10)
    assert error.value.sqlite_errorcode == sqlite3.SQLITE_FULL
