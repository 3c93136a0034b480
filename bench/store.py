"""The results store: one SQLite database per results directory.

Every finished cell is written in one transaction (its run row, scores, parameter counts and
loss curve), so a crash or Ctrl-C leaves each finished cell whole and nothing half-written.
Reports and exports read only from here.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.record import STORED, CellRecord, ParamCounts, Score

SCHEMA_VERSION = 2  # 2: scores carry their 95% bootstrap interval (low, high)

SCHEMA = """
CREATE TABLE IF NOT EXISTS grids (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,            -- the grid YAML as run
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS grid_cells (
    grid TEXT NOT NULL REFERENCES grids(name),
    cell TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (grid, cell)
);
CREATE TABLE IF NOT EXISTS runs (
    cell TEXT PRIMARY KEY,
    config TEXT NOT NULL,          -- the fully resolved cell config (JSON)
    task TEXT NOT NULL,
    method TEXT NOT NULL,
    label TEXT NOT NULL,
    settings TEXT NOT NULL,
    model TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    seed INTEGER NOT NULL,
    n_train INTEGER,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    error TEXT,
    started_at REAL,
    finished_at REAL,
    timings TEXT,                  -- JSON: seconds per phase
    provenance TEXT                -- JSON: package versions, git sha, hardware
);
CREATE TABLE IF NOT EXISTS scores (
    cell TEXT NOT NULL REFERENCES runs(cell),
    split TEXT NOT NULL,
    ood INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,           -- on the official scorer's scale
    n INTEGER NOT NULL,            -- inputs scored
    low REAL,                      -- 95% bootstrap interval over inputs (NULL: not computed)
    high REAL,
    PRIMARY KEY (cell, split, metric)
);
CREATE TABLE IF NOT EXISTS params (
    cell TEXT PRIMARY KEY REFERENCES runs(cell),
    trained INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    total INTEGER NOT NULL,        -- parameters of the base model
    stored_bytes INTEGER NOT NULL  -- size of the stored checkpoint on disk
);
CREATE TABLE IF NOT EXISTS losses (
    cell TEXT NOT NULL REFERENCES runs(cell),
    kind TEXT NOT NULL CHECK (kind IN ('train', 'dev')),
    step INTEGER NOT NULL,         -- optimizer step (train) or epoch (dev)
    value REAL NOT NULL,
    PRIMARY KEY (cell, kind, step)
);
"""


def cell_dir(results_dir: Path, cell_id: str) -> Path:
    """Where a cell's files live beside the database: predictions and stored weights."""
    return results_dir / "cells" / cell_id


def predictions_file(folder: Path, split: str) -> Path:
    """A split's predictions (JSONL: source, prediction, references) in a cell's folder."""
    return folder / "predictions" / f"{split}.jsonl"


class Store:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        """Open (creating it unless `readonly`) the database at `path`. Commands that only
        read open it read-only, so they never change it."""
        self.path = path
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit
        self.db.row_factory = sqlite3.Row
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION) or (readonly and version == 0):
            self.db.close()
            raise UserError(
                f"{path} has schema version {version}, this bench reads {SCHEMA_VERSION}; "
                "use a new --results-dir (or rerun the grid there)"
            )
        if not readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @classmethod
    def open_existing(cls, results_dir: Path) -> Store:
        """A results directory's store, read-only: for commands that only read."""
        path = results_dir / "bench.sqlite"
        if not path.is_file():
            raise UserError(
                f"no results in {results_dir} (no bench.sqlite); run a grid first "
                "with `python -m bench run --grid`, or pass --results-dir"
            )
        return cls(path, readonly=True)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- writing ----------------------------------------------------------------------------
    def register_grid(self, name: str, spec_text: str, cells: list[str]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO grids VALUES (?, ?, ?)", (name, spec_text, time.time())
            )
            db.execute("DELETE FROM grid_cells WHERE grid = ?", (name,))
            db.executemany(
                "INSERT INTO grid_cells VALUES (?, ?, ?)",
                [(name, cell, i) for i, cell in enumerate(cells)],
            )

    def start_cell(self, cell: str, config: dict[str, Any]) -> None:
        with self.transaction() as db:
            self._clear(db, cell)
            db.execute(
                "INSERT INTO runs (cell, config, task, method, label, settings, model, checkpoint,"
                " seed, n_train, status, started_at) VALUES (?,?,?,?,?,?,?,?,?,?,'running',?)",
                (
                    cell,
                    json.dumps(config, sort_keys=True),
                    config["task"],
                    config["method"],
                    config["label"],
                    json.dumps(config["settings"], sort_keys=True),
                    config["model"],
                    config["checkpoint"],
                    config["seed"],
                    config["n_train"],
                    time.time(),
                ),
            )

    def finish_cell(
        self,
        cell: str,
        scores: list[Score],
        params: ParamCounts,
        losses: dict[str, list[tuple[int, float]]],
        timings: dict[str, float],
        provenance: dict[str, Any],
    ) -> None:
        """A finished cell's rows, and its run marked done, in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO scores VALUES (?,?,?,?,?,?,?,?)",
                [
                    (cell, s.split, int(s.ood), s.metric, s.value, s.n, s.low, s.high)
                    for s in scores
                ],
            )
            db.execute(
                "INSERT INTO params VALUES (?,?,?,?,?)",
                (cell, params.trained, params.stored, params.total, params.stored_bytes),
            )
            db.executemany(
                "INSERT INTO losses VALUES (?,?,?,?)",
                [
                    (cell, kind, step, value)
                    for kind, curve in losses.items()
                    for step, value in curve
                ],
            )
            db.execute(
                "UPDATE runs SET status='done', error=NULL, finished_at=?, timings=?, provenance=?"
                " WHERE cell=?",
                (time.time(), json.dumps(timings), json.dumps(provenance, sort_keys=True), cell),
            )

    def fail_cell(self, cell: str, status: str, error: str, provenance: dict[str, Any]) -> None:
        with self.transaction() as db:
            self._clear(db, cell, keep_run=True)
            db.execute(
                "UPDATE runs SET status=?, error=?, finished_at=?, provenance=? WHERE cell=?",
                (status, error, time.time(), json.dumps(provenance, sort_keys=True), cell),
            )

    @staticmethod
    def _clear(db: sqlite3.Connection, cell: str, keep_run: bool = False) -> None:
        for table in ("scores", "params", "losses", *(() if keep_run else ("runs",))):
            db.execute(f"DELETE FROM {table} WHERE cell = ?", (cell,))

    # --- reading ----------------------------------------------------------------------------
    @staticmethod
    def finished_cells(path: Path) -> set[str]:
        """Finished cell ids of a store, read without creating or changing anything."""
        if not path.exists():
            return set()
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return {row[0] for row in db.execute("SELECT cell FROM runs WHERE status = 'done'")}
        finally:
            db.close()

    def status(self, cell: str) -> str | None:
        row = self.db.execute("SELECT status FROM runs WHERE cell = ?", (cell,)).fetchone()
        return row["status"] if row else None

    def grids(self) -> list[str]:
        return [r["name"] for r in self.db.execute("SELECT name FROM grids ORDER BY updated_at")]

    def grid_spec(self, grid: str) -> str | None:
        row = self.db.execute("SELECT spec FROM grids WHERE name = ?", (grid,)).fetchone()
        return row["spec"] if row else None

    def runs(self, grid: str | None = None) -> list[sqlite3.Row]:
        if grid is None:
            return self.db.execute(
                "SELECT r.*, NULL AS grid FROM runs r ORDER BY started_at"
            ).fetchall()
        return self.db.execute(
            "SELECT r.*, g.grid FROM runs r JOIN grid_cells g ON g.cell = r.cell"
            " WHERE g.grid = ? ORDER BY g.position",
            (grid,),
        ).fetchall()

    def results(self, grid: str | None = None) -> list[sqlite3.Row]:
        """One row per (grid, cell, split, metric) of finished cells, with parameter counts."""
        where, args = ("WHERE g.grid = ?", (grid,)) if grid else ("", ())
        return self.db.execute(
            "SELECT g.grid, r.cell, r.task, s.split, s.ood, r.method, r.label, r.settings,"
            " r.model, r.checkpoint, r.seed, r.n_train, s.metric, s.value, s.n, s.low, s.high,"
            " p.trained AS trained_params, p.stored AS stored_params, p.total AS total_params,"
            " p.stored_bytes"
            " FROM scores s JOIN runs r ON r.cell = s.cell JOIN params p ON p.cell = s.cell"
            f" JOIN grid_cells g ON g.cell = s.cell {where}"
            " ORDER BY g.grid, g.position, s.rowid",
            args,
        ).fetchall()

    def losses(self, cell: str, kind: str = "train") -> list[tuple[int, float]]:
        return [
            (r["step"], r["value"])
            for r in self.db.execute(
                "SELECT step, value FROM losses WHERE cell = ? AND kind = ? ORDER BY step",
                (cell, kind),
            )
        ]


def write_record(store: Store, results_dir: Path, record: CellRecord) -> None:
    """The one place a finished cell is written: its folder (predictions per split, stored
    weights, cell.json), whole or absent, then its rows in the store."""
    out = cell_dir(results_dir, record.cell.id)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "cell.json").write_text(json.dumps(record.cell.model_dump(mode="json"), indent=2))
    for split, predictions in record.predictions.items():
        path = predictions_file(staging, split)
        path.parent.mkdir(exist_ok=True)
        with path.open("w") as f:
            f.writelines(json.dumps(asdict(prediction)) + "\n" for prediction in predictions)
    (staging / STORED).write_bytes(record.stored)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    store.finish_cell(
        record.cell.id,
        record.scores,
        record.params,
        record.losses,
        record.timings,
        record.provenance,
    )
