"""A grid on the real E2E and WebNLG files runs end to end with the mini LM, on CPU."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.runs import bench
from tests.shared_data import shared_data_dir

REAL_GRID = """
name: real-smoke
model: mini-tiny
seeds: [0]
tasks:
  - {name: e2e, n_train: [30], eval_limit: 6}
  - {name: webnlg, n_train: [30], eval_limit: 6, splits: [test_seen, test_unseen]}
methods:
  - {name: finetune, train: {lr: 1.0e-3}}
train: {epochs: 1, batch_size: 8}
decode: {num_beams: 1, max_new_tokens: 16}
"""


@pytest.mark.slow
def test_a_real_task_grid_runs_and_records_its_data(tmp_path):
    data = shared_data_dir()
    grid = tmp_path / "real.yaml"
    grid.write_text(REAL_GRID)
    results = tmp_path / "results"
    run = bench("run", "--grid", str(grid), "--results-dir", str(results), "--data-dir", str(data))
    assert run.returncode == 0, run.stderr
    assert "2 run, 0 already done, 0 failed" in run.stderr

    rows = json.loads(bench("export", "--results-dir", str(results)).stdout)
    assert {(r["task"], r["split"]) for r in rows} == {
        ("e2e", "test"),
        ("webnlg", "test_seen"),
        ("webnlg", "test_unseen"),
    }
    db = sqlite3.connect(results / "bench.sqlite")
    provenance = [json.loads(p) for (p,) in db.execute("SELECT provenance FROM runs")]
    e2e = next(p for p in provenance if "e2e/trainset.csv" in " ".join(p["data_sha256"]))
    assert all(len(digest) == 64 for digest in e2e["data_sha256"].values())
    assert e2e["data_recipe"]["grouping"].startswith("references grouped by identical MR")


def test_missing_data_stops_the_run_before_anything_is_written(tmp_path):
    grid = tmp_path / "real.yaml"
    grid.write_text(REAL_GRID)
    empty = tmp_path / "empty"
    empty.mkdir()
    results = tmp_path / "results"
    run = bench("run", "--grid", str(grid), "--results-dir", str(results), "--data-dir", str(empty))
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "e2e/trainset.csv not found" in run.stderr
    assert not results.exists()
