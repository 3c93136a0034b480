"""The command line end to end: a tiny grid runs, reruns skip, bad input exits 2 cleanly."""

from __future__ import annotations

import json
import re

import pytest

from tests.runs import bench


@pytest.mark.slow
def test_tiny_grid_end_to_end_then_a_rerun_skips_every_cell(tmp_path, tiny_grid):
    results = tmp_path / "results"
    first = bench("run", "--grid", str(tiny_grid), "--results-dir", str(results))
    assert first.returncode == 0, first.stderr
    assert "4 run, 0 already done, 0 failed" in first.stderr

    report = results / "reports" / "tiny" / "report.md"
    text = report.read_text()
    assert "4 of 4 cells finished" in text and "test_unseen [OOD]" in text
    assert (report.parent / "id_vs_ood.png").stat().st_size > 1000

    rows = json.loads(bench("export", "--results-dir", str(results)).stdout)
    assert {
        "cell",
        "grid",
        "task",
        "split",
        "method",
        "settings",
        "model",
        "seed",
        "n_train",
        "metric",
        "value",
        "trained_params",
        "stored_params",
    } <= set(rows[0])
    assert len(rows) == 2 * (1 + 2) * 2  # methods x splits x metrics
    for row in rows:
        assert 0 <= row["value"] <= 100 and row["n_train"] == 40
    prefix_rows = [r for r in rows if r["method"] == "prefix"]
    assert {r["stored_params"] for r in prefix_rows} == {4 * 2 * 2 * 64}

    for cell in {r["cell"] for r in rows}:
        files = results / "cells" / cell
        assert (files / "stored.safetensors").is_file()
        lines = (files / "predictions").glob("*.jsonl")
        assert all(json.loads(line)["references"] for f in lines for line in f.open())

    second = bench("run", "--grid", str(tiny_grid), "--results-dir", str(results))
    assert second.returncode == 0 and "0 run, 4 already done, 0 failed" in second.stderr

    csv_out = bench("export", "--results-dir", str(results), "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("grid,cell,task,split")
    report.unlink()
    assert bench("report", "--results-dir", str(results), "--intervals").returncode == 0
    assert report.is_file()
    page = (report.parent / "index.html").read_text()
    assert "Results matrix" in page and re.search(r"\d+\.\d+ \[\d+\.\d+, \d+\.\d+\]", page)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--grid", "nope"], "unknown grid 'nope'"),
        (["run", "--grid", "mini", "--model", "random:gpt5"], "unknown architecture 'gpt5'"),
        (["run", "--grid", "mini", "--model", "no-such-org/no-such-model"], "cannot be loaded"),
        (["report"], "no results in results"),
        (["export", "--results-dir", "elsewhere"], "no results in elsewhere"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(tmp_path, args, message):
    result = bench(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()  # nothing half-written


def test_bad_grid_key_exits_2_and_writes_nothing(tmp_path, tiny_grid):
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_grid.read_text().replace("length: 4", "lenght: 4"))
    result = bench("run", "--grid", str(bad), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "methods.1.lenght: Extra inputs are not permitted" in result.stderr
    assert not (tmp_path / "r").exists()


def test_list():
    assert "mini-webnlg" in bench("list", "tasks").stdout
    assert "prefix" in bench("list", "methods").stdout
    assert "rouge_l" in bench("list", "metrics").stdout
    assert "mini\t" in bench("list", "grids").stdout
