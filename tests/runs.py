"""Helpers for tests that run `python -m bench run` as a user would and inspect what it left."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def _as_from_a_shell() -> None:
    """In the child before it starts: Ctrl-C and SIGTERM handled as a shell's child has them.
    A child inherits an ignored SIGINT (and a blocked one) from the test process, where an
    earlier test may have left it so; Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def fresh_python(code: str) -> str:
    """What `code` prints in a fresh interpreter (whose modules no earlier test imported)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def bench_here(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`python -m bench ARGS` in this process: (exit status, stdout, stderr)."""
    from bench.cli import main

    monkeypatch.setattr(sys, "argv", ["bench", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` as a user runs it (in the repository unless `cwd`), to the end."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=300,
    )


def bench_process(grid: Path, results: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--grid", str(grid), "--results-dir", str(results),
         "--checkpoint-minutes", "0", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"},
        preexec_fn=_as_from_a_shell,
    )  # fmt: skip


def finished(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=600)
    return process.returncode, err


def predictions(results: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(results)): p.read_bytes()
        for p in sorted((results / "cells").glob("*/predictions/*.jsonl"))
    }


def check_consistent(results: Path, done_before: set[str]) -> set[str]:
    """The store is whole, no finished cell was lost, every done cell has whole files."""
    db = sqlite3.connect(results / "bench.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = {row[0] for row in db.execute("SELECT cell FROM runs WHERE status = 'done'")}
    counts = {
        (cell, split): n
        for cell, split, n in db.execute("SELECT DISTINCT cell, split, n FROM scores")
    }
    db.close()
    assert done_before <= done, f"finished cells lost: {done_before - done}"
    for (cell, split), n in counts.items():
        lines = (results / "cells" / cell / "predictions" / f"{split}.jsonl").read_text()
        assert len(lines.splitlines()) == n and all(json.loads(x) for x in lines.splitlines())
        assert (results / "cells" / cell / "stored.safetensors").is_file()
    return done


def ray_processes(title: str) -> list[psutil.Process]:
    """This test process's descendants (a run's own local Ray, or one the test started) whose
    title starts with `title`, never another session's: Ray titles a worker `ray::NAME` while it
    runs the task NAME (`ray::cell-ID` here), and an actor's process `ray::CLASS`."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if " ".join(process.cmdline()).startswith(title):
                found.append(process)
        except psutil.Error:  # gone, or a zombie, since it was listed
            continue
    return found


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def snapshot(folder: Path) -> dict[str, object]:
    """Every folder, link (its target) and regular file (its mtime and bytes) under `folder`,
    links not followed, so a link's target outside a results dir is snapshotted once, where it
    is; SQLite's WAL side files, which a reader may create (never the database itself), left
    out."""
    entries: dict[str, object] = {}
    for root, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            path = Path(root) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                entries[key] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[key] = "folder"
            elif path.is_file() and not name.endswith(("-wal", "-shm")):
                entries[key] = (path.stat().st_mtime_ns, path.read_bytes())
            elif not path.is_file():
                entries[key] = "special"
    return entries
