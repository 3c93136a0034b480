"""A done cell's claim keeps its rows, its files' digests are checked, and a kill mid-swap settles
back to the folder its rows describe; stores of version 3 upgrade and keep their results."""

from __future__ import annotations

import os
import re
import sqlite3

from bench.engine.record import ParamCounts, Score
from bench.results import integrity
from bench.results.integrity import aside_dir, digest, settle_folder
from bench.results.store import SCHEMA, SCHEMA_VERSION, Store, cell_problems
from tests.results.test_store import CONFIG

HERE = f"{os.uname().nodename}:{os.getpid()}"


def finish(store: Store, cell: str, value: float, files=()) -> None:
    store.finish_cell(
        cell, [Score("test", False, "bleu", value, 1)], ParamCounts(1, 1, 1, 1), {}, {}, {}, files
    )


def test_a_claimed_done_cell_stays_done_until_its_replacement_commits(tmp_path):
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("g", "name: g", ["c1"])
    store.start_cell("c1", CONFIG, HERE)
    finish(store, "c1", 1.0)
    assert not store.held("c1")  # committing released the claim
    assert store.claim("c1", CONFIG, HERE, since=store.run("c1")["finished_at"] + 1, force=True)
    assert store.held("c1") and store.status("c1") == "done"
    assert [r["value"] for r in store.results("g")] == [1.0]  # still reported
    assert not store.claim("c1", CONFIG, "other-host:7", since=2e9, force=True)  # held here
    store.fail_cell("c1", "failed", "boom", {})  # the rerun failed: the old result stays
    assert store.status("c1") == "done" and not store.held("c1")
    assert store.run("c1")["error"] is None and [r["value"] for r in store.results("g")] == [1.0]
    assert store.claim("c1", CONFIG, "other-host:7", since=2e9, force=True)
    store.heartbeat("c1", "other-host:7")
    finish(store, "c1", 2.0, [digest("cell.json", b"{}")])  # replaced in one transaction
    assert [r["value"] for r in store.results("g")] == [2.0]
    assert store.files("c1") == [digest("cell.json", b"{}")] and not store.held("c1")
    store.heartbeat("c1", "other-host:7")  # a late heartbeat does not claim it again
    assert not store.held("c1")


def test_missing_resized_and_altered_files_are_named(tmp_path, monkeypatch):
    folder = tmp_path / "cells" / "c1"
    (folder / "predictions").mkdir(parents=True)
    files = {"cell.json": b"{}", "predictions/test.jsonl": b"line\n", "stored.safetensors": b"w"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    store = Store(tmp_path / "bench.sqlite")
    store.start_cell("c1", CONFIG)
    finish(store, "c1", 1.0, [digest(name, data) for name, data in files.items()])
    assert cell_problems(store, tmp_path, "c1", full=True) == []
    (folder / "predictions" / "test.jsonl").write_bytes(b"lime\n")  # same size, other bytes
    with monkeypatch.context() as patch:  # files over the limit: by size, unless `full`
        patch.setattr(integrity, "FULL_DIGEST_BYTES", 4)
        assert cell_problems(store, tmp_path, "c1") == []
        assert len(cell_problems(store, tmp_path, "c1", full=True)) == 1
    (folder / "stored.safetensors").write_bytes(b"ww")
    (folder / "cell.json").unlink()
    assert cell_problems(store, tmp_path, "c1") == [
        "cell.json is missing",
        "predictions/test.jsonl differs from its recorded sha256",
        "stored.safetensors has 2 bytes, 1 recorded",
    ]
    os.rename(folder, tmp_path / "elsewhere")
    assert cell_problems(store, tmp_path, "c1") == [f"its folder {folder} is missing"]


def test_settling_keeps_the_folder_the_rows_describe(tmp_path):
    folder, old = tmp_path / "c1", {"w": b"old"}
    recorded = [digest("w", old["w"])]

    def layout(current: bytes | None, aside: bytes | None) -> None:
        for path, data in ((folder, current), (aside_dir(folder), aside)):
            if data is not None:
                path.mkdir()
                (path / "w").write_bytes(data)

    layout(b"new", b"old")  # swapped, not committed: the old folder goes back
    settle_folder(folder, recorded)
    assert (folder / "w").read_bytes() == b"old" and not aside_dir(folder).exists()
    os.rename(folder, aside_dir(folder))  # killed between the two renames
    settle_folder(folder, recorded)
    assert (folder / "w").read_bytes() == b"old" and not aside_dir(folder).exists()
    layout(None, b"older")  # committed: the set-aside folder goes
    settle_folder(folder, recorded)
    assert (folder / "w").read_bytes() == b"old" and not aside_dir(folder).exists()
    layout(None, b"old")  # stored before digests: only a commit records them, so none did
    (folder / "w").write_bytes(b"new")
    settle_folder(folder, [])
    assert (folder / "w").read_bytes() == b"old"


def test_a_version_3_store_is_upgraded_and_its_cells_checked_for_their_files(tmp_path):
    v3 = re.sub(r"CREATE TABLE IF NOT EXISTS files \(.*?\);", "", SCHEMA, flags=re.S)
    db = sqlite3.connect(tmp_path / "bench.sqlite")
    db.executescript(v3 + ";PRAGMA user_version=3;")
    db.execute(
        "INSERT INTO runs (cell, config, task, method, label, settings, model, checkpoint, seed,"
        " status, owner, heartbeat) VALUES ('c1', '{}', 't', 'm', 'm', '{}', 'mini', 'mini@a', 0,"
        f" 'done', '{HERE}', 1e10)"
    )
    db.execute("INSERT INTO scores VALUES ('c1', 'test', 0, 'bleu', 1.0, 1, NULL, NULL)")
    db.commit()
    db.close()
    readonly = Store(tmp_path / "bench.sqlite", readonly=True)
    assert readonly.version == 3 and readonly.files("c1") == []
    assert cell_problems(readonly, tmp_path, "c1") == [
        f"its folder {tmp_path / 'cells' / 'c1'} is missing"
    ]
    readonly.close()
    store = Store(tmp_path / "bench.sqlite")
    assert store.version == SCHEMA_VERSION == 5
    assert store.run("c1")["heartbeat"] is None and not store.held("c1")
    (tmp_path / "cells" / "c1" / "predictions").mkdir(parents=True)
    (tmp_path / "cells" / "c1" / "cell.json").write_text("{}")
    assert cell_problems(store, tmp_path, "c1") == [
        "stored.safetensors is missing",
        "predictions/test.jsonl is missing",
    ]
