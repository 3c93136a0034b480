"""The SQLite store: round trip, and no half-written cells."""

import pytest

from bench.record import ParamCounts, Score
from bench.store import Store

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
