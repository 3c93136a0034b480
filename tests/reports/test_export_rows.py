"""One results schema: `bench export --format json|csv` writes `load_results`' columns and values
(scores, or with --losses the losses frame), to stdout or a file written whole."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

import bench
from bench.errors import UserError
from tests.runs import bench_here, snapshot


def _export(monkeypatch, capsys, results, *args) -> str:
    code, out, err = bench_here(monkeypatch, capsys, "export", "--results-dir", str(results), *args)
    assert code == 0, err
    return out


def _same(exported: list[dict], frame: pd.DataFrame) -> None:
    assert len(exported) == len(frame)
    for row, (_, expected) in zip(exported, frame.iterrows(), strict=True):
        for column, value in expected.items():
            if isinstance(value, float) and pd.isna(value):
                assert row[column] in (None, ""), column
            elif isinstance(value, float):
                assert float(row[column]) == pytest.approx(value, rel=1e-12), column
            elif isinstance(value, dict):
                assert (
                    json.loads(row[column]) if isinstance(row[column], str) else row[column]
                ) == value
            elif isinstance(value, bool):
                assert row[column] in (value, str(value)), column
            else:
                assert str(row[column]) == str(value), column


@pytest.mark.parametrize("what", ["scores", "losses"])
def test_csv_and_json_are_load_results(reference, monkeypatch, capsys, what):
    _, results = reference
    frame = bench.load_results(results, what=what)
    flag = ("--losses",) if what == "losses" else ()
    text = _export(monkeypatch, capsys, results, "--format", "csv", *flag)
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == list(frame.columns)
    _same(list(reader), frame)
    records = json.loads(_export(monkeypatch, capsys, results, "--format", "json", *flag))
    assert list(records[0]) == list(frame.columns)
    _same(records, frame)


def test_losses_are_every_training_step(reference):
    _, results = reference
    losses = bench.load_results(results, what="losses")
    scores = bench.load_results(results)
    assert set(losses["cell"]) == set(scores["cell"]) and set(losses["kind"]) == {"train"}
    for _, steps in losses.groupby("cell")["step"]:
        assert list(steps) == list(range(1, len(steps) + 1))


def test_out_writes_each_format_to_a_file(reference, monkeypatch, capsys, tmp_path):
    _, results = reference
    before = snapshot(results)
    for format_ in ("json", "csv"):
        out = tmp_path / f"rows.{format_}"
        _export(monkeypatch, capsys, results, "--format", format_, "--out", str(out))
        assert out.read_text() == _export(monkeypatch, capsys, results, "--format", format_)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv", "rows.json"]
    assert snapshot(results) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--format", "bundle", "--losses", "--out", "x.gz"), "--losses goes with --format json"),
        (("--format", "csv", "--out", "."), "exists and is not a regular file"),
        (("--format", "csv", "--out", "no/such/x.csv"), "is not a folder"),
    ],
)
def test_bad_requests_are_one_line(reference, monkeypatch, capsys, args, message):
    _, results = reference
    code, _, err = bench_here(monkeypatch, capsys, "export", "--results-dir", str(results), *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_load_results_names_what_it_reads(reference):
    with pytest.raises(UserError, match="choose scores or losses"):
        bench.load_results(reference[1], what="loss")
