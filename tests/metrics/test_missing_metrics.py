"""A metric that cannot run (no Java, a crashed JVM) is skipped with its reason: the cell keeps
its other metrics, the store keeps the reason, and reports and `bench score` say it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from bench.cli import app
from bench.engine.cell import CellData, score_outputs
from bench.engine.record import CellRecord, ParamCounts, Score
from bench.metrics import MetricUnavailable
from bench.metrics.bleu import SacreBleu
from bench.metrics.suites import missing, score_suite
from bench.reports.frame import Missing, missing_metrics, results_frame
from bench.reports.layouts import tables
from bench.reports.report import write_report
from bench.reports.terminal import results_summary
from bench.results.store import MISSING_METRICS, Store
from bench.run import executor, runner
from bench.spec.grid import expand, load_grid
from bench.spec.registry import TASKS
from tests.records import fake_record

NO_JAVA = (
    "needs Java, which is not on PATH: install a Java runtime (8+) on PATH, e.g. "
    "`apt-get install default-jre-headless`"
)
WEBNLG_REFS = [["the cat sat on the mat .", "a cat sat on a mat ."], ["dogs bark at night ."]]


def crashing_java(folder: Path) -> str:
    """A PATH whose `java` dies as a JVM does when it aborts (exit 134, a message on stderr)."""
    java = folder / "java"
    java.write_text(
        "#!/bin/sh\necho '# A fatal error has been detected by the JRE' >&2\nexit 134\n"
    )
    java.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_a_crashing_meteor_jvm_leaves_the_other_webnlg_metrics_scored(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", crashing_java(tmp_path))
    scores = score_suite("webnlg", ["the cat sat on the mat .", "dogs bark ."], WEBNLG_REFS)
    assert scores["bleu"].value > 0 and scores["ter"].value is not None  # no JVM in either
    assert scores["bleu"].low is not None  # still with its bootstrap interval
    assert missing(scores) == {
        "meteor": "the Java scorer failed (exit 134: # A fatal error has been detected by the JRE)"
    }
    assert scores["meteor"].value is None


def test_a_bug_in_a_metric_is_raised_not_reported_as_unavailable(monkeypatch):
    def broken(self, hypotheses, references):
        raise ZeroDivisionError("a bug, not a missing scorer")

    monkeypatch.setattr(SacreBleu, "segment_stats", broken)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        score_suite("mini", ["a cat"], [["a cat"]])


def test_the_score_phase_keeps_the_other_metrics_and_returns_the_reason(monkeypatch):
    def no_java(self, hypotheses, references):
        raise MetricUnavailable(NO_JAVA)

    monkeypatch.setattr(SacreBleu, "segment_stats", no_java)
    task = TASKS.get("mini-webnlg")()
    splits = {s: task.load(s)[:5] for s in ("test_seen", "test_unseen")}
    outputs = {ex.source: ex.references[0] for examples in splits.values() for ex in examples}
    scores, unscored = score_outputs(CellData(task, [], [], splits, {}), outputs)
    assert [(s.split, s.metric, s.value, s.n) for s in scores] == [
        ("test_seen", "rouge_l", 100.0, 5),
        ("test_unseen", "rouge_l", 100.0, 5),
    ]
    assert unscored == {"test_seen": {"bleu": NO_JAVA}, "test_unseen": {"bleu": NO_JAVA}}


def _record_without_meteor(cell) -> CellRecord:
    """What `run_cell` returns for a cell whose METEOR could not run: its other scores, and
    the reason per split."""
    return fake_record(
        cell,
        splits=cell.splits,
        bleu=50.0,
        params=ParamCounts(1, 1, 10, 4),
        losses={"train": [(1, 2.0)]},
        timings={"train": 1.0},
        provenance={"git_sha": "abc"},
        notes=[f"meteor unavailable on {cell.task} {s}: {NO_JAVA}" for s in cell.splits],
        missing={split: {"meteor": NO_JAVA} for split in cell.splits},
    )


def test_a_cell_without_meteor_is_stored_with_the_reason_and_reports_show_it(
    tmp_path, tiny_grid, monkeypatch
):
    cells = expand(load_grid(str(tiny_grid))[0])
    cells = [c for c in cells if c.task == "mini-webnlg"]  # two cells, two splits each
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("tiny", "name: tiny", [c.id for c in cells])
    monkeypatch.setattr(executor, "run_cell", lambda cell, *args: _record_without_meteor(cell))
    summary = runner.run_cells(cells, store, tmp_path, None)
    assert len(summary.done) == 2 and not summary.failed  # the cells finished, scored
    store.close()

    readonly = Store(tmp_path / "bench.sqlite", readonly=True)  # as `bench report` reads it
    rows = readonly.missing_metrics("tiny")
    assert [(r["cell"], r["split"], r["metric"], r["reason"]) for r in rows] == [
        (cell.id, split, "meteor", NO_JAVA) for cell in cells for split in cell.splits
    ]
    assert {r["metric"] for r in readonly.results("tiny")} == {"bleu"}  # never a stored 0
    note = f"METEOR missing on mini-webnlg test_seen (2 of 2 cells): {NO_JAVA}"

    console = Console(record=True, width=100)
    results_summary(readonly, "tiny", console)
    printed = console.export_text()
    assert note in printed and "METEOR missing on mini-webnlg test_unseen (2 of 2" in printed

    index = write_report(readonly, "tiny", tmp_path / "report")
    for name in ("index.html", "report.md", "matrix.md"):
        assert note in (index.parent / name).read_text(), name
    assert note.replace("_", r"\_") in (index.parent / "matrix.tex").read_text()


def test_a_store_without_reasons_reads_as_nothing_missing(tmp_path, tiny_grid):
    """Cells stored before reasons were kept (no key in their provenance) miss nothing."""
    cell = expand(load_grid(str(tiny_grid))[0])[0]
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("tiny", "", [cell.id])
    store.start_cell(cell.id, cell.model_dump(mode="json"))
    store.finish_cell(cell.id, [], ParamCounts(1, 1, 1, 1), {}, {}, {"git_sha": "abc"})
    assert store.missing_metrics("tiny") == []


E2E_CSV = (
    "mr,ref\n"
    '"name[Aromi], eatType[pub]",Aromi is a pub.\n'
    '"name[Aromi], eatType[pub]",There is a pub called Aromi.\n'
    '"name[Blue Spice], area[riverside]",Blue Spice is by the riverside.\n'
    '"name[Cotto], food[Italian]",Cotto serves Italian food.\n'
)


def test_bench_score_without_java_prints_the_other_metrics_and_the_reason(tmp_path, monkeypatch):
    (tmp_path / "e2e").mkdir()
    (tmp_path / "e2e" / "testset_w_refs.csv").write_text(E2E_CSV)
    predictions = tmp_path / "out.txt"
    predictions.write_text("Aromi is a pub.\nBlue Spice is near the river.\nCotto is Italian.\n")
    monkeypatch.setenv("PATH", str(tmp_path / "e2e"))  # no `java` there
    args = [
        "score",
        "--task",
        "e2e",
        "--data-dir",
        str(tmp_path),
        "--predictions",
        str(predictions),
    ]

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for metric in ("bleu", "nist"):
        row = next(line for line in lines if f" {metric} " in line)
        assert "unavailable" not in row and "[" in row  # a value and its interval
    for metric in ("meteor", "rouge_l", "cider"):  # the PTB tokenizer is Java too
        assert f"{metric} unavailable: {NO_JAVA}" in lines

    out = json.loads(CliRunner().invoke(app, [*args, "--json"]).output)
    metrics = out["splits"]["test"]["metrics"]
    assert metrics["bleu"]["value"] > 0 and metrics["meteor"]["unavailable"] == NO_JAVA


def test_a_missing_metric_footnotes_the_tables_of_its_task_only(tmp_path):
    store = Store(tmp_path / "bench.sqlite")
    cells = (("e", "e2e", "bleu", {"test": {"meteor": NO_JAVA}}), ("x", "xsum", "rouge_1", {}))
    for cell, task, metric, unscored in cells:
        config = {"task": task, "method": "finetune", "label": "FT", "settings": {}, "seed": 0}
        store.start_cell(cell, config | {"model": "m", "checkpoint": "m@0", "n_train": None})
        scores = [Score("test", False, metric, 0.5, 9)]
        provenance = {MISSING_METRICS: unscored}
        store.finish_cell(cell, scores, ParamCounts(1, 1, 2, 4), {}, {}, provenance)
    store.register_grid("g", "name: g", ["e", "x"])
    missing = missing_metrics(store, "g")
    assert missing == [Missing("e2e", "test", "meteor", NO_JAVA, 1, 1)]
    notes = {t.name: t.notes for t in tables(results_frame(store, "g"), missing=missing)}
    note = f"METEOR missing on E2E test (1 of 1 cells): {NO_JAVA}"
    assert note in notes["table1"] and note in notes["matrix"]  # no METEOR column: said why
    assert note not in notes["table2"]  # XSum's table
