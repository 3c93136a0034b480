"""Bad input, across every subcommand: exit status 2, one line naming the problem and the fix,
no traceback, and nothing written (no results directory created, no file changed).

Each case runs the real command line in-process (`bench.cli.main`), from a folder holding the
files the case needs; the folder is snapshotted before and compared after."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.cli import main
from bench.results.store import Store, write_record
from bench.spec.grid import expand, load_grid
from tests.conftest import TINY_GRID
from tests.records import fake_record

Setup = Callable[[Path], None]


def grid_file(text: str | bytes, name: str = "g.yaml") -> Setup:
    def setup(folder: Path) -> None:
        path = folder / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def tiny(old: str, new: str) -> Setup:
    assert old in TINY_GRID, old
    return grid_file(TINY_GRID.replace(old, new, 1))


def results(folder: Path, name: str = "res") -> Path:
    """A results dir with one finished cell (a fake record of a real cell), built in ms."""
    cell = expand(load_grid(TINY_GRID_PATH)[0])[0]
    store = Store(folder / name / "bench.sqlite")
    store.register_grid("tiny", TINY_GRID, [cell.id])
    store.start_cell(cell.id, cell.model_dump(mode="json"))
    write_record(store, folder / name, fake_record(cell, n=3, bleu=10.0))
    store.close()
    return folder / name


def with_results(change: Callable[[Path], None] | None = None) -> Setup:
    def setup(folder: Path) -> None:
        made = results(folder)
        if change is not None:
            change(made)

    return setup


def corrupt_database(folder: Path) -> None:
    (folder / "bench.sqlite").write_bytes(b"this is not a database" * 100)


def other_schema(folder: Path) -> None:
    db = sqlite3.connect(folder / "bench.sqlite")
    db.execute("PRAGMA user_version=99")
    db.close()


def short_predictions(folder: Path) -> None:
    (path,) = (folder / "cells").glob("*/predictions/test.jsonl")
    path.write_text(path.read_text().splitlines(keepends=True)[0])


def malformed_predictions(folder: Path) -> None:
    (path,) = (folder / "cells").glob("*/predictions/test.jsonl")
    path.write_text('{"source": "s", "prediction": \n')


def bundle(content: bytes | dict, name: str = "b.json.gz") -> Setup:
    def setup(folder: Path) -> None:
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        (folder / name).write_bytes(data if isinstance(content, bytes) else gzip.compress(data))

    return setup


def data_file(relative: str, text: str | bytes) -> Setup:
    def setup(folder: Path) -> None:
        path = folder / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def text_file(name: str, text: str | bytes) -> Setup:
    def setup(folder: Path) -> None:
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def real_task_grid(task: str) -> Setup:
    return grid_file(f"name: g\nmodel: mini-tiny\ntasks: [{{name: {task}}}]\nmethods: [{{name: finetune}}]\n")  # noqa: E501


E2E_GRID = real_task_grid("e2e")
RUN = ("run", "--grid", "g.yaml", "--results-dir", "r")

CASES: list[tuple[str, tuple[str, ...], list[Setup], str]] = [
    # --- grid YAML ------------------------------------------------------------------------
    ("empty grid", RUN, [grid_file("")], "a grid is a YAML mapping"),
    ("grid not a mapping", RUN, [grid_file("- a\n- b\n")], "a grid is a YAML mapping"),
    ("binary grid", RUN, [grid_file(b"\x00\xff\xfe\x89PNG")], "not a text file"),
    ("YAML syntax", RUN, [grid_file("name: [unclosed\n")], "not valid YAML"),
    ("unknown key", RUN, [tiny("seeds: [0]", "seedz: [0]")], "seedz: Extra inputs"),
    ("misspelled nested key", RUN, [tiny("epochs: 1", "epoch: 1")], "train.epoch: Extra inputs"),
    ("wrong type", RUN, [tiny("seeds: [0]", "seeds: zero")], "seeds: Input should be"),
    ("zero epochs", RUN, [tiny("epochs: 1", "epochs: 0")], "train.epochs: Input should be greater"),
    ("unknown precision", RUN, [tiny("epochs: 1", "epochs: 1, precision: fp8")], "train.precision: Input should be 'auto', 'fp32', 'bf16' or 'fp16'"),  # noqa: E501
    ("compile not a boolean", RUN, [tiny("epochs: 1", "epochs: 1, compile: maybe")], "train.compile: Input should be a valid boolean"),  # noqa: E501
    ("zero beams", RUN, [tiny("num_beams: 2", "num_beams: 0")], "decode.num_beams: Input should"),
    ("zero batch tokens", RUN, [tiny("num_beams: 2", "num_beams: 2, batch_tokens: 0")], "decode.batch_tokens: Input should be greater"),  # noqa: E501
    ("negative lr", RUN, [tiny("lr: 1.0e-3", "lr: -1.0e-3")], "methods.0.train.lr: Input should"),
    ("negative prefix length", RUN, [tiny("length: 4", "length: -4")], "methods.1.length: Input"),
    ("no tasks", RUN, [grid_file("name: g\ntasks: []\nmethods: [{name: finetune}]\n")], "tasks: List should have at least 1"),  # noqa: E501
    ("no methods", RUN, [grid_file("name: g\ntasks: [{name: mini-e2e}]\nmethods: []\n")], "methods: List should have at least 1"),  # noqa: E501
    ("no seeds", RUN, [tiny("seeds: [0]", "seeds: []")], "seeds: List should have at least 1"),
    ("no sizes", RUN, [tiny("n_train: [40]", "n_train: []")], "n_train: List should have at least 1"),  # noqa: E501
    ("no splits", RUN, [tiny("splits: [test_seen, test_unseen]", "splits: []")], "splits: List should have at least 1"),  # noqa: E501
    ("unknown task", RUN, [tiny("name: mini-e2e", "name: mini-e2")], "did you mean 'mini-e2e'"),
    ("unknown method", RUN, [tiny("name: prefix", "name: prefx")], "did you mean 'prefix'"),
    ("unknown setting", RUN, [tiny("length: 4", "lenght: 4")], "methods.1.lenght: Extra inputs"),
    ("unknown split", RUN, [tiny("test_seen, test_unseen", "test_seen, dev_unseen")], "no eval split 'dev_unseen'"),  # noqa: E501
    ("unknown architecture", RUN, [tiny("model: mini-tiny", "model: random:gpt5")], "unknown architecture 'gpt5'"),  # noqa: E501
    ("missing model path", RUN, [tiny("model: mini-tiny", "model: ./no/such/model")], "cannot be loaded"),  # noqa: E501
    ("grid named ..", RUN, [tiny("name: tiny", "name: ..")], "name: String should match"),
    ("grid named ''", RUN, [tiny("name: tiny", "name: ''")], "name: String should match"),
    ("max_new_tokens past positions", RUN, [tiny("max_new_tokens: 24", "max_new_tokens: 5000")], "max_new_tokens"),  # noqa: E501
    ("min_new_tokens above max", RUN, [tiny("max_new_tokens: 24", "max_new_tokens: 24, min_new_tokens: 30")], "min_new_tokens"),  # noqa: E501
    ("grid file missing", ("run", "--grid", "nowhere.yaml"), [], "grid file nowhere.yaml does not exist"),  # noqa: E501
    ("unknown preset", ("run", "--grid", "mimi"), [], "did you mean 'mini'"),
    ("unknown plugin", (*RUN, "--plugin", "no.such.plugin"), [tiny("", "")], "plugin 'no.such.plugin' cannot be imported"),  # noqa: E501
    # --- options ------------------------------------------------------------------------------
    ("data dir not a dir", (*RUN, "--data-dir", "g.yaml"), [tiny("", "")], "--data-dir g.yaml is not a directory"),  # noqa: E501
    ("negative tolerance", (*RUN, "--tolerance", "-1"), [tiny("", "")], "--tolerance"),
    ("unknown option", ("run", "--gird", "mini"), [], "No such option '--gird'"),
    ("unknown command", ("rn",), [], "No such command 'rn'"),
    ("list of nothing", ("list", "everything"), [], "'everything' is not one of"),
    # --- data ---------------------------------------------------------------------------------
    ("data missing", ("run", "--grid", "g.yaml", "--data-dir", "data"), [E2E_GRID, data_file("README", "")], "trainset.csv not found"),  # noqa: E501
    ("CSV truncated", ("run", "--grid", "g.yaml", "--data-dir", "data"), [E2E_GRID, data_file("e2e/trainset.csv", 'mr,ref\n"name[A], eatType[pub]",A.\n"name[B], area[')], "malformed CSV"),  # noqa: E501
    ("CSV malformed MR", ("run", "--grid", "g.yaml", "--data-dir", "data"), [E2E_GRID, data_file("e2e/trainset.csv", "mr,ref\nname[A] eatType,A.\n")], "malformed MR"),  # noqa: E501
    ("XML truncated", ("run", "--grid", "g.yaml", "--data-dir", "data"), [real_task_grid("webnlg"), data_file("webnlg/webnlg_challenge_2017/train/1triples/Airport.xml", "<benchmark><entries><entry")], "malformed XML"),  # noqa: E501
    ("JSON malformed", ("run", "--grid", "g.yaml", "--data-dir", "data"), [real_task_grid("dart"), data_file("dart/dart-v1.1.1-full-train.json", '[{"tripleset": ')], "dart-v1.1.1-full-train.json"),  # noqa: E501
    ("stats data dir missing", ("data", "stats", "--data-dir", "nowhere"), [], "--data-dir nowhere is not a directory"),  # noqa: E501
    ("download unknown task", ("data", "download", "e3e"), [], "e3e"),
    # --- predictions files (score) ------------------------------------------------------------
    ("predictions wrong count", ("score", "--task", "mini-e2e", "--predictions", "p.txt"), [text_file("p.txt", "a\nb\n")], "has 2 lines but mini-e2e test has 200 inputs"),  # noqa: E501
    ("predictions empty", ("score", "--task", "mini-e2e", "--predictions", "p.txt"), [text_file("p.txt", "")], "has 0 lines"),  # noqa: E501
    ("predictions not UTF-8", ("score", "--task", "mini-e2e", "--predictions", "p.txt"), [text_file("p.txt", b"\xff\xfe\x00a\n")], "is not UTF-8"),  # noqa: E501
    ("predictions missing", ("score", "--task", "mini-e2e", "--predictions", "p.txt"), [], "p.txt: no such file"),  # noqa: E501
    ("score unknown task", ("score", "--task", "mini-e3e", "--predictions", "p.txt"), [text_file("p.txt", "a\n")], "did you mean 'mini-e2e'"),  # noqa: E501
    ("score unknown split", ("score", "--task", "mini-e2e", "--split", "tset", "--predictions", "p.txt"), [text_file("p.txt", "a\n")], "no eval split 'tset'"),  # noqa: E501
    ("params unknown model", ("params", "--model", "gpt3"), [], "unknown model 'gpt3'"),
    ("perf unknown grid", ("perf", "--grid", "mimi", "--warm-only"), [], "did you mean 'mini'"),
    # --- results directories ------------------------------------------------------------------
    ("results dir is a file", ("run", "--grid", "g.yaml", "--results-dir", "g.yaml"), [tiny("", "")], "g.yaml is not a directory"),  # noqa: E501
    ("report without results", ("report", "--results-dir", "nowhere"), [], "no results in nowhere"),
    ("report corrupted store", ("report", "--results-dir", "res"), [with_results(corrupt_database)], "is not a bench results database"),  # noqa: E501
    ("export corrupted store", ("export", "--results-dir", "res"), [with_results(corrupt_database)], "is not a bench results database"),  # noqa: E501
    ("run into corrupted store", ("run", "--grid", "g.yaml", "--results-dir", "res"), [tiny("", ""), with_results(corrupt_database)], "is not a bench results database"),  # noqa: E501
    ("compare corrupted store", ("compare", "res", "res"), [with_results(corrupt_database)], "is not a bench results database"),  # noqa: E501
    ("store of another schema", ("export", "--results-dir", "res"), [with_results(other_schema)], "schema version 99"),  # noqa: E501
    ("export unknown grid", ("export", "--results-dir", "res", "--grid", "nosuch"), [with_results()], "no grid 'nosuch'"),  # noqa: E501
    ("report unknown grid", ("report", "--results-dir", "res", "--grid", "nosuch"), [with_results()], "no grid 'nosuch'"),  # noqa: E501
    ("bundle without --out", ("export", "--results-dir", "res", "--format", "bundle"), [with_results()], "pass --out FILE"),  # noqa: E501
    ("--out without bundle", ("export", "--results-dir", "res", "--out", "x.json"), [with_results()], "--out is for --format bundle"),  # noqa: E501
    ("bundle of short predictions", ("export", "--results-dir", "res", "--format", "bundle", "--out", "b.json.gz"), [with_results(short_predictions)], "has 1 lines but the cell scored 3"),  # noqa: E501
    ("malformed predictions JSONL", ("compare", "res", "res"), [with_results(malformed_predictions)], "malformed"),  # noqa: E501
    # --- bundles ------------------------------------------------------------------------------
    ("bundle missing", ("compare", "nowhere.json.gz", "res"), [with_results()], "nowhere.json.gz does not exist"),  # noqa: E501
    ("bundle not gzip", ("compare", "b.json.gz", "res"), [with_results(), bundle(b"plain text")], "is not a bundle"),  # noqa: E501
    ("bundle truncated gzip", ("compare", "b.json.gz", "res"), [with_results(), bundle(gzip.compress(b'{"format": "bench-bundle/1"')[:20])], "is not a bundle"),  # noqa: E501
    ("bundle of another format", ("compare", "b.json.gz", "res"), [with_results(), bundle({"format": "bench-bundle/9", "cells": []})], "bench-bundle/9"),  # noqa: E501
    ("bundle with missing keys", ("compare", "b.json.gz", "res"), [with_results(), bundle({"format": "bench-bundle/1", "cells": [{"cell": "x"}]})], "b.json.gz"),  # noqa: E501
    ("compare unknown metric", ("compare", "res", "res", "--metric", "blue"), [with_results()], "unknown metric"),  # noqa: E501
]

TINY_GRID_PATH = ""


@pytest.fixture(autouse=True)
def tiny_grid_path(tmp_path_factory: pytest.TempPathFactory) -> None:
    global TINY_GRID_PATH
    path = tmp_path_factory.mktemp("grid") / "tiny.yaml"
    path.write_text(TINY_GRID)
    TINY_GRID_PATH = str(path)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file's mtime and bytes; SQLite's WAL side files, which a reader may create (never
    the database itself), left out."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


@pytest.mark.parametrize(("args", "setups", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # noqa: E501
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, monkeypatch, capsys, args, setups, message
):
    for setup in setups:
        setup(tmp_path)
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    monkeypatch.setenv("COLUMNS", "500")
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "r").exists() and not (tmp_path / "results").exists()


def test_there_are_at_least_40_cases_over_every_subcommand():
    assert len(CASES) >= 40
    commands = {args[0] for _, args, _, _ in CASES}
    assert commands >= {
        "run", "report", "export", "compare", "list", "params", "data", "score", "perf"
    }  # fmt: skip
    assert os.path.basename(__file__) == "test_bad_input.py"
