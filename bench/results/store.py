"""The results store: one SQLite database per results directory.

Every finished cell is written in one transaction (its run row, scores, parameter counts, loss
curve and its files' digests), so a crash or Ctrl-C leaves each finished cell whole and nothing
half-written. A finished cell stays finished until its replacement commits: a claim on it
(`--force`, or a repair of broken files) leaves its rows as they are. Reports and exports read
only from here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.engine.record import STORED, CellRecord, ParamCounts, Score
from bench.errors import UserError
from bench.results.integrity import (
    FileDigest,
    aside_dir,
    digest,
    folder_problems,
    missing_files,
    settle_folder,
    staging_dir,
    swap_in,
    sync_dir,
)
from bench.results.paths import check_path_text, check_reachable, inside

# 2: scores carry 95% intervals (low, high); 3: runs carry their claim; 4: files carry digests,
# and only a claimed run has a heartbeat (a done run's claim is released when it commits)
SCHEMA_VERSION = 5
# 5: WebNLG's `test` (seen and unseen categories together) was stored as ID; it is neither.
MIXED_SPLITS = (
    "UPDATE scores SET ood = 2 WHERE split = 'test' AND ood = 0"
    " AND cell IN (SELECT cell FROM runs WHERE task IN ('webnlg', 'mini-webnlg'))"
)
UPGRADES = {  # version -> statements that bring a store of it to SCHEMA_VERSION (`files`: SCHEMA)
    2: (
        "ALTER TABLE runs ADD COLUMN owner TEXT",
        "ALTER TABLE runs ADD COLUMN heartbeat REAL",
        MIXED_SPLITS,
    ),
    3: ("UPDATE runs SET heartbeat = NULL WHERE status != 'running'", MIXED_SPLITS),
    4: (MIXED_SPLITS,),
}
# The provenance key of the metrics a finished cell has no score for (split -> metric -> why):
# kept in the run's provenance JSON, not a table of its own, so stores of every version read alike.
MISSING_METRICS = "missing_metrics"
HEARTBEAT_SECONDS = 20.0  # a running cell's runner renews its claim this often
LEASE_SECONDS = 90.0  # a claim not renewed for this long is stale: its cell is taken over
BUSY_TIMEOUT_MS = 30_000  # another process's write transaction: wait, never "database is locked"

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
    provenance TEXT,               -- JSON: package versions, git sha, hardware
    owner TEXT,                    -- the runner working on it: host:pid (its claim)
    heartbeat REAL                 -- when that runner last said it is alive (NULL: no claim)
);
CREATE TABLE IF NOT EXISTS scores (
    cell TEXT NOT NULL REFERENCES runs(cell),
    split TEXT NOT NULL,
    ood INTEGER NOT NULL,          -- 0: ID, 1: OOD, 2: all (ID and OOD inputs mixed)
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
CREATE TABLE IF NOT EXISTS files (
    cell TEXT NOT NULL REFERENCES runs(cell),
    path TEXT NOT NULL,            -- in the cell's folder: cell.json, predictions/test.jsonl, ...
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (cell, path)
);
"""


def cell_dir(results_dir: Path, cell_id: str) -> Path:
    """Where a cell's files live beside the database: predictions and stored weights."""
    return results_dir / "cells" / cell_id


def checkpoint_dir(results_dir: Path, cell_id: str) -> Path:
    """Where a running cell keeps its mid-cell checkpoint; removed once the cell is stored."""
    return results_dir / "cells" / f"{cell_id}.checkpoint"


def predictions_file(folder: Path, split: str) -> Path:
    """A split's predictions (JSONL: source, prediction, references) in a cell's folder."""
    return folder / "predictions" / f"{split}.jsonl"


class Store:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        """Open (creating it unless `readonly`) the database at `path`. Commands that only
        read open it read-only, so they never change it; a file that is not a bench store is
        refused before anything is written to it."""
        self.path = path
        if readonly:
            self.db = _connect_readonly(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        version = _schema_version(self.db, path)
        if version not in (0, *UPGRADES, SCHEMA_VERSION) or (readonly and version == 0):
            self.db.close()
            raise UserError(
                f"{path} has schema version {version}, this bench reads {SCHEMA_VERSION}; "
                "use a new --results-dir (or rerun the grid there)"
            )
        self.version = version
        if not readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self.transaction() as db:
                for statement in UPGRADES.get(version, ()):
                    db.execute(statement)
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.version = SCHEMA_VERSION

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
        """A short write transaction; another process's lock is waited for (busy timeout) and,
        past it, is the user's to sort out, in one line."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise UserError(
                f"{self.path} cannot be written ({error}; waited {BUSY_TIMEOUT_MS // 1000} s): "
                "another process holds it, or it is read-only; pass another --results-dir"
            ) from None
        try:
            yield self.db
        except BaseException:
            if self.db.in_transaction:  # SQLite itself rolls back on some errors (a full disk)
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

    def start_cell(self, cell: str, config: dict[str, Any], owner: str | None = None) -> None:
        with self.transaction() as db:
            self._start(db, cell, config, owner)

    def claim(
        self, cell: str, config: dict[str, Any], owner: str, since: float, force: bool
    ) -> bool:
        """Take `cell` for `owner` (a runner started at `since`), atomically: True when it is
        this runner's to run. A cell is taken when it was never run, failed or was interrupted
        before this runner started, is done and `force`d (done before it started), or is
        `running` under a claim whose owner is gone (a dead process, or a lease not renewed).
        A done cell keeps its rows (and stays done) while claimed: only the owner and heartbeat
        mark the claim, and its replacement's commit (`finish_cell`) or failure releases it."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT status, owner, heartbeat, finished_at FROM runs WHERE cell = ?", (cell,)
            ).fetchone()
            if row is not None and not _claimable(row, owner, since, force):
                return False
            if row is not None and row["status"] == "done":
                db.execute(
                    "UPDATE runs SET owner = ?, heartbeat = ? WHERE cell = ?",
                    (owner, time.time(), cell),
                )
            else:
                self._start(db, cell, config, owner)
            return True

    def release(self, cell: str, owner: str) -> None:
        """End `owner`'s claim on a done cell, which keeps its rows."""
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET heartbeat = NULL WHERE cell = ? AND owner = ? AND status = 'done'",
                (cell, owner),
            )

    def heartbeat(self, cell: str, owner: str) -> None:
        """Renew `owner`'s claim on a cell it runs (a released claim stays released)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET heartbeat = ? WHERE cell = ? AND owner = ?"
                " AND heartbeat IS NOT NULL",
                (time.time(), cell, owner),
            )

    def _start(
        self, db: sqlite3.Connection, cell: str, config: dict[str, Any], owner: str | None
    ) -> None:
        self._clear(db, cell)
        now = time.time()
        db.execute(
            "INSERT INTO runs (cell, config, task, method, label, settings, model, checkpoint,"
            " seed, n_train, status, started_at, owner, heartbeat)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,'running',?,?,?)",
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
                now,
                owner,
                now,
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
        files: Sequence[FileDigest] = (),
    ) -> None:
        """A finished cell's rows (the digests of its `files` among them), and its run marked
        done with its claim released, in one transaction that replaces any earlier result."""
        with self.transaction() as db:
            self._clear(db, cell, keep_run=True)
            db.executemany("INSERT INTO files VALUES (?,?,?,?)", [(cell, *f) for f in files])
            db.executemany(
                "INSERT INTO scores VALUES (?,?,?,?,?,?,?,?)",
                [(cell, s.split, s.code, s.metric, s.value, s.n, s.low, s.high) for s in scores],
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
                "UPDATE runs SET status='done', error=NULL, finished_at=?, timings=?, provenance=?,"
                " heartbeat=NULL WHERE cell=?",
                (time.time(), json.dumps(timings), json.dumps(provenance, sort_keys=True), cell),
            )

    def fail_cell(self, cell: str, status: str, error: str, provenance: dict[str, Any]) -> None:
        """Record why a claimed cell did not finish, releasing the claim; a done cell (a forced
        rerun or a repair that failed) keeps its result, and the failure is only printed."""
        with self.transaction() as db:
            row = db.execute("SELECT status FROM runs WHERE cell = ?", (cell,)).fetchone()
            if row is not None and row["status"] == "done":
                db.execute("UPDATE runs SET heartbeat=NULL WHERE cell=?", (cell,))
                return
            self._clear(db, cell, keep_run=True)
            db.execute(
                "UPDATE runs SET status=?, error=?, finished_at=?, provenance=?, heartbeat=NULL"
                " WHERE cell=?",
                (status, error, time.time(), json.dumps(provenance, sort_keys=True), cell),
            )

    @staticmethod
    def _clear(db: sqlite3.Connection, cell: str, keep_run: bool = False) -> None:
        for table in ("scores", "params", "losses", "files", *(() if keep_run else ("runs",))):
            db.execute(f"DELETE FROM {table} WHERE cell = ?", (cell,))

    # --- reading ----------------------------------------------------------------------------
    @staticmethod
    def finished_cells(path: Path) -> set[str]:
        """Finished cell ids of a store, read without creating or changing anything."""
        if not path.exists():
            return set()
        store = Store(path, readonly=True)
        try:
            return {row[0] for row in store.db.execute("SELECT cell FROM runs WHERE status='done'")}
        finally:
            store.close()

    def status(self, cell: str) -> str | None:
        row = self.db.execute("SELECT status FROM runs WHERE cell = ?", (cell,)).fetchone()
        return row["status"] if row else None

    def held(self, cell: str) -> bool:
        """Whether a live runner (this one or another) is working on `cell`."""
        run = self.run(cell)
        return run is not None and _live(run)

    def run(self, cell: str) -> dict[str, Any] | None:
        """A cell's run row, if it has one."""
        row = self.db.execute("SELECT * FROM runs WHERE cell = ?", (cell,)).fetchone()
        return dict(row) if row is not None else None

    def grids(self) -> list[str]:
        return [r["name"] for r in self.db.execute("SELECT name FROM grids ORDER BY updated_at")]

    def check_grid(self, grid: str | None) -> None:
        """A grid name the user gave (None: all grids) must be in this store."""
        if grid is not None and self.grid_spec(grid) is None:
            raise UserError(
                f"no grid {grid!r} in {self.path.parent}; grids there: "
                f"{', '.join(self.grids()) or 'none'}"
            )

    def grid_spec(self, grid: str) -> str | None:
        row = self.db.execute("SELECT spec FROM grids WHERE name = ?", (grid,)).fetchone()
        return row["spec"] if row else None

    def runs(self, grid: str | None = None) -> list[dict[str, Any]]:
        """The grid's runs (every run, without a grid), in grid order; a `running` run whose
        runner is gone (killed, or its lease expired) is shown as `interrupted`."""
        if grid is None:
            rows = self.db.execute("SELECT r.*, NULL AS grid FROM runs r ORDER BY started_at")
        else:
            rows = self.db.execute(
                "SELECT r.*, g.grid FROM runs r JOIN grid_cells g ON g.cell = r.cell"
                " WHERE g.grid = ? ORDER BY g.position",
                (grid,),
            )
        runs = [dict(row) for row in rows]
        for run in runs:
            if run["status"] == "running" and not _live(run):
                run["status"] = "interrupted"
        return runs

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

    def missing_metrics(self, grid: str | None = None) -> list[dict[str, Any]]:
        """The metrics finished cells have no score for, and why (no Java, a crashed JVM): one
        row (cell, task, label, split, metric, reason) each, in grid order. Cells stored before
        reasons were kept have none."""
        rows = []
        for run in self.runs(grid):
            if run["status"] != "done":
                continue
            unscored = json.loads(run["provenance"] or "{}").get(MISSING_METRICS, {})
            rows += [
                {"cell": run["cell"], "task": run["task"], "label": run["label"]}
                | {"split": split, "metric": metric, "reason": reason}
                for split, metrics in unscored.items()
                for metric, reason in metrics.items()
            ]
        return rows

    def loss_rows(self, grid: str | None = None) -> list[sqlite3.Row]:
        """One row per (grid, cell, kind, step) of finished cells' training and dev losses."""
        where, args = ("AND g.grid = ?", (grid,)) if grid else ("", ())
        return self.db.execute(
            "SELECT g.grid, r.cell, r.task, r.method, r.label, r.settings, r.model, r.checkpoint,"
            " r.seed, r.n_train, l.kind, l.step, l.value"
            " FROM losses l JOIN runs r ON r.cell = l.cell"
            f" JOIN grid_cells g ON g.cell = l.cell WHERE r.status = 'done' {where}"
            " ORDER BY g.grid, g.position, l.kind DESC, l.step",
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

    def files(self, cell: str) -> list[FileDigest]:
        """The digests recorded when `cell` was written (none for cells stored before them)."""
        if self.version < 4:  # a store opened read-only and not upgraded
            return []
        rows = self.db.execute(
            "SELECT path, size, sha256 FROM files WHERE cell = ? ORDER BY path", (cell,)
        )
        return [FileDigest(*row) for row in rows]

    def expected_files(self, cell: str) -> list[str]:
        """The files a done cell stored before digests were recorded must have: cell.json, its
        weights, and the predictions of every split it has scores for."""
        splits = self.db.execute("SELECT DISTINCT split FROM scores WHERE cell = ?", (cell,))
        return ["cell.json", STORED, *(f"predictions/{row[0]}.jsonl" for row in splits)]


def write_record(store: Store, results_dir: Path, record: CellRecord) -> None:
    """The one place a finished cell is written: its folder (predictions per split, stored
    weights, cell.json), then its rows in the store with the files' digests, then its mid-cell
    checkpoint is dropped. The files are flushed to disk and swapped in
    (`bench.results.integrity`) before the rows commit, and an earlier result of the cell is
    set aside, not removed, until they have: a kill at any moment leaves the old result or the
    new one, each with its own files (`settle_cell` puts back whichever the rows describe). A
    folder without a `done` row counts as absent. The metrics it has no score for go into its
    provenance (`MISSING_METRICS`) with their reasons. The caller holds the cell's claim."""
    cell = record.cell.id
    out = cell_dir(results_dir, cell)
    settle_cell(store, results_dir, cell)  # an earlier writer's leftovers, if it was killed
    staging = staging_dir(out)
    try:
        files = _write_cell_files(staging, record)
    except BaseException:  # a full disk, say: the cell fails, and leaves nothing half-written
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        swap_in(staging, out)
        store.finish_cell(
            cell,
            record.scores,
            record.params,
            record.losses,
            record.timings,
            {**record.provenance, MISSING_METRICS: record.missing},
            files,
        )
    except BaseException:  # committed or not (a signal after COMMIT): keep what the rows say
        settle_cell(store, results_dir, cell)
        raise
    shutil.rmtree(aside_dir(out), ignore_errors=True)
    shutil.rmtree(checkpoint_dir(results_dir, cell), ignore_errors=True)


def settle_cell(store: Store, results_dir: Path, cell: str) -> None:
    """Leave `cell`'s folder as its rows describe after a writer stopped at any moment
    (`bench.results.integrity.settle_folder`). Only for a cell this process holds, or one no
    live runner holds."""
    run = store.run(cell)
    done = run is not None and run["status"] == "done"
    settle_folder(cell_dir(results_dir, cell), store.files(cell) if done else None)


def cell_problems(
    store: Store, results_dir: Path, cell: str, full: bool = False, folder: Path | None = None
) -> list[str]:
    """What is wrong with a done cell's files (empty: nothing), in its folder (or `folder`):
    missing, another size, or another sha256 than recorded (`bench.results.integrity`: which
    files are hashed, `full`); for a cell stored before digests, only which files are missing."""
    folder = folder or cell_dir(results_dir, cell)
    recorded = store.files(cell)
    if recorded:
        return folder_problems(folder, recorded, full)
    return missing_files(folder, store.expected_files(cell))


@dataclass(frozen=True)
class BrokenCell:
    """A done cell whose files are not the ones stored with it."""

    cell: str
    task: str
    label: str
    problems: list[str]

    def describe(self) -> str:
        return f"{self.task} / {self.label} (cell {self.cell}): {'; '.join(self.problems)}"


def broken_cells(store: Store, results_dir: Path, grid: str | None = None) -> list[BrokenCell]:
    """The grid's (every grid's) done cells whose files are missing or changed, and why, in grid
    order; reads only (files are hashed, nothing is repaired: the next `run` settles or reruns
    them). A cell a live runner is replacing is left out: its old files may be set aside."""
    broken = []
    for run in store.runs(grid):
        if run["status"] != "done" or _live(run):
            continue
        problems = cell_problems(store, results_dir, run["cell"])
        aside = aside_dir(cell_dir(results_dir, run["cell"]))
        if (
            problems
            and aside.is_dir()
            and not cell_problems(store, results_dir, run["cell"], folder=aside)
        ):
            problems = [f"a rerun killed mid-swap left its stored files in {aside.name}"]
        if problems:
            broken.append(BrokenCell(run["cell"], run["task"], run["label"], problems))
    return broken


def _write_cell_files(folder: Path, record: CellRecord) -> list[FileDigest]:
    """The cell's files, each flushed to disk; their digests, to be recorded with its rows."""
    folder.mkdir(parents=True)
    contents = {"cell.json": json.dumps(record.cell.model_dump(mode="json"), indent=2).encode()}
    for split, predictions in record.predictions.items():
        lines = "".join(json.dumps(asdict(p)) + "\n" for p in predictions)
        contents[predictions_file(Path(), split).as_posix()] = lines.encode()
    contents[STORED] = record.stored
    for name, data in contents.items():
        (folder / name).parent.mkdir(exist_ok=True)
        _write_synced(folder / name, data)
    for parent in dict.fromkeys((folder / name).parent for name in contents):
        sync_dir(parent)
    return [digest(name, data) for name, data in contents.items()]


def _write_synced(path: Path, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """`path` opened read-only, through a URI whose path is escaped (a folder named `a#b?c%`
    is a path, not a fragment and a query). A store on a read-only mount cannot get the lock
    files WAL mode needs; it is opened as immutable then (nothing can write it there)."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
    try:
        db.execute("PRAGMA user_version").fetchone()
    except sqlite3.OperationalError:
        db.close()
        db = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
    except sqlite3.DatabaseError:
        pass  # not a database at all: `_schema_version` says so
    return db


def _schema_version(db: sqlite3.Connection, path: Path) -> int:
    """The store's schema version; a file that SQLite cannot read as a database, or whose
    pages are damaged (`PRAGMA quick_check`, milliseconds on a results store), is the user's."""
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version:
            db.execute("SELECT count(*) FROM runs").fetchone()
            damage = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if damage != "ok":
                raise sqlite3.DatabaseError(f"damaged: {damage}")
    except sqlite3.DatabaseError as error:
        db.close()
        raise UserError(
            f"{path} is not a bench results database, or is damaged ({error}); move it away "
            "(or restore it from a backup) and pass another --results-dir"
        ) from None
    return version


MIN_FREE_BYTES = 100 * 2**20  # a mini cell writes a few MB; real cells far more


def check_results_dir(results_dir: Path) -> None:
    """Refuse, before any training, a results directory that cannot take results: a file, a
    read-only folder or file system, or a disk nearly full; one whose paths are not text, lead
    nowhere, or whose store, `cells/` or `reports/` are of the wrong kind or lead out of it
    (`bench.results.paths`). Nothing is created here."""
    check_path_text(results_dir, "--results-dir")
    check_reachable(results_dir, "--results-dir")
    if results_dir.is_dir():
        inside(results_dir, "bench.sqlite", "file")
        inside(results_dir, "cells")
        inside(results_dir, "reports")
    existing = next(p for p in (results_dir, *results_dir.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"--results-dir {results_dir}: {existing} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UserError(
            f"--results-dir {results_dir}: cannot write in {existing} ({error.strerror}); "
            "pass a writable --results-dir"
        ) from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise UserError(
            f"--results-dir {results_dir}: only {free / 2**20:.0f} MiB free on its disk (at "
            f"least {MIN_FREE_BYTES // 2**20} MiB needed); free some space or pass another "
            "--results-dir"
        )


def this_owner() -> str:
    """This process, as the owner of its claims: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None, heartbeat: float | None) -> bool:
    """Whether a claim's runner still works on it: its lease was renewed lately and, on this
    host, its process exists (so a killed runner's cells are taken over at once)."""
    if owner is None or heartbeat is None or time.time() - heartbeat > LEASE_SECONDS:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _live(run: dict[str, Any]) -> bool:
    """A `running` run, or a done one being replaced, whose runner still works on it (a v2
    store's runs have no owner; a released claim has no heartbeat)."""
    return run["status"] in ("running", "done") and owner_alive(
        run.get("owner"), run.get("heartbeat")
    )


def _claimable(row: sqlite3.Row, owner: str, since: float, force: bool) -> bool:
    status, finished = row["status"], row["finished_at"] or 0.0
    if _live(dict(row)):
        return row["owner"] == owner
    if status == "running":  # its runner is gone
        return True
    if finished >= since:  # another runner finished or failed it while this one runs
        return False
    return status != "done" or force
