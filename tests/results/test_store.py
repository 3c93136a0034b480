"""The SQLite store: round trip, no half-written cells, schema upgrades, claims."""

import os
import re
import sqlite3
import time

import pytest

from bench.engine.record import ParamCounts, Score
from bench.results.store import SCHEMA, SCHEMA_VERSION, Store

CONFIG = {
    "task": "t",
    "method": "m",
    "label": "m",
    "settings": {"k": 1},
    "model": "mini",
    "checkpoint": "mini@abc",
    "seed": 0,
    "n_train": None,
}


def test_round_trip(tmp_path):
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("g", "name: g", ["c1"])
    store.start_cell("c1", CONFIG)
    assert store.status("c1") == "running"
    scores = [Score("test", False, "bleu", 41.5, 10), Score("test_ood", True, "bleu", 20.0, 10)]
    store.finish_cell(
        "c1",
        scores,
        ParamCounts(10, 5, 100, 80),
        {"train": [(1, 2.0), (2, 1.5)], "dev": [(1, 1.7)]},
        {"train": 1.0},
        {"git_sha": None},
    )
    store.close()

    store = Store(tmp_path / "bench.sqlite")  # reopened: everything is there
    assert store.status("c1") == "done"
    rows = [dict(r) for r in store.results("g")]
    assert [(r["split"], r["ood"], r["value"]) for r in rows] == [
        ("test", 0, 41.5),
        ("test_ood", 1, 20.0),
    ]
    assert rows[0]["trained_params"] == 10 and rows[0]["stored_params"] == 5
    assert store.losses("c1") == [(1, 2.0), (2, 1.5)]
    assert store.losses("c1", "dev") == [(1, 1.7)]
    assert store.grids() == ["g"] and store.grid_spec("g") == "name: g"


def test_a_failure_inside_the_transaction_writes_nothing(tmp_path):
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("g", "name: g", ["c1"])
    store.start_cell("c1", CONFIG)
    bad_scores = [Score("test", False, "bleu", 1.0, 1), Score("test", False, "bleu", 2.0, 1)]
    with pytest.raises(Exception, match="UNIQUE"):
        store.finish_cell("c1", bad_scores, ParamCounts(1, 1, 1, 1), {}, {}, {})
    assert store.status("c1") == "running"
    assert store.results("g") == []


def test_a_failed_cell_keeps_its_reason_and_a_rerun_clears_it(tmp_path):
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("g", "name: g", ["c1"])
    store.start_cell("c1", CONFIG)
    store.fail_cell("c1", "failed", "TrainingDiverged: loss is nan", {})
    assert store.status("c1") == "failed"
    assert store.runs("g")[0]["error"].startswith("TrainingDiverged")
    store.start_cell("c1", CONFIG)
    assert store.status("c1") == "running" and store.runs("g")[0]["error"] is None


def test_a_version_2_store_is_upgraded_in_place_and_keeps_its_results(tmp_path):
    lines = [line for line in SCHEMA.splitlines() if "owner TEXT" not in line]
    v2 = "\n".join(line for line in lines if "heartbeat REAL" not in line)
    v2 = re.sub(r"provenance TEXT,", "provenance TEXT", v2)
    db = sqlite3.connect(tmp_path / "bench.sqlite")
    db.executescript(v2 + ";PRAGMA user_version=2;")
    db.execute("INSERT INTO grids VALUES ('g', 'name: g', 0)")
    db.execute("INSERT INTO grid_cells VALUES ('g', 'c1', 0)")
    db.execute(
        "INSERT INTO runs (cell, config, task, method, label, settings, model, checkpoint, seed,"
        " status) VALUES ('c1', '{}', 't', 'm', 'm', '{}', 'mini', 'mini@a', 0, 'done')"
    )
    db.execute("INSERT INTO scores VALUES ('c1', 'test', 0, 'bleu', 1.0, 1, NULL, NULL)")
    db.execute("INSERT INTO params VALUES ('c1', 1, 1, 1, 1)")
    db.commit()
    db.close()

    readonly = Store(tmp_path / "bench.sqlite", readonly=True)  # read as it is, unchanged
    assert readonly.version == 2 and readonly.runs("g")[0]["status"] == "done"
    readonly.close()
    upgraded = Store(tmp_path / "bench.sqlite")
    assert upgraded.version == SCHEMA_VERSION and len(upgraded.results("g")) == 1
    assert upgraded.claim("c2", CONFIG, "host:1", since=0.0, force=False)
    assert not upgraded.claim("c1", CONFIG, "host:1", since=0.0, force=False)  # done


def test_claims_take_each_cell_once_per_runner(tmp_path):
    store = Store(tmp_path / "bench.sqlite")
    here = f"{os.uname().nodename}:{os.getpid()}"
    assert store.claim("c1", CONFIG, here, since=0.0, force=False)
    assert not store.claim("c1", CONFIG, "other-host:7", since=0.0, force=False)  # held, alive
    store.fail_cell("c1", "failed", "boom", {})
    later = time.time() + 1
    assert store.claim("c1", CONFIG, here, since=later, force=False)  # failed before it started
    store.fail_cell("c1", "failed", "boom", {})
    assert not store.claim("c1", CONFIG, "other-host:7", since=0.0, force=False)  # failed since


def test_a_version_4_store_tags_webnlg_test_as_all_when_upgraded(tmp_path):
    db = sqlite3.connect(tmp_path / "bench.sqlite")
    db.executescript(SCHEMA + ";PRAGMA user_version=4;")
    for cell, task in (("w", "mini-webnlg"), ("e", "mini-e2e")):
        db.execute(
            "INSERT INTO runs (cell, config, task, method, label, settings, model, checkpoint,"
            f" seed, status) VALUES ('{cell}', '{{}}', '{task}', 'm', 'm', '{{}}', 'mini', 'm@a',"
            " 0, 'done')"
        )
    rows = [("w", "test", 0), ("w", "test_seen", 0), ("w", "test_unseen", 1), ("e", "test", 0)]
    for cell, split, code in rows:
        db.execute(
            "INSERT INTO scores VALUES (?, ?, ?, 'bleu', 1, 1, NULL, NULL)", (cell, split, code)
        )
    db.commit()
    db.close()
    Store(tmp_path / "bench.sqlite").close()
    db = sqlite3.connect(tmp_path / "bench.sqlite")
    upgraded = db.execute("SELECT cell, split, ood FROM scores ORDER BY rowid").fetchall()
    assert upgraded == [("w", "test", 2), ("w", "test_seen", 0), ("w", "test_unseen", 1),
                        ("e", "test", 0)]  # fmt: skip
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
