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
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.cli import main
from bench.results.store import Store, write_record
from bench.spec.grid import expand, load_grid
from tests.conftest import TINY_GRID
from tests.records import fake_record
from tests.runs import snapshot

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


def folder_at(relative: str) -> Setup:
    def setup(folder: Path) -> None:
        (folder / relative).mkdir(parents=True)

    return setup


def fifo_at(relative: str) -> Setup:
    def setup(folder: Path) -> None:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(folder / relative)

    return setup


def link_at(relative: str, target: str) -> Setup:
    def setup(folder: Path) -> None:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).symlink_to(target)

    return setup


def outside(relative: str) -> Callable[[Path], None]:
    """A results dir's `relative` as a symlink to a folder outside it, holding one file (the
    snapshot checks that the link's target is never touched)."""

    def change(results_dir: Path) -> None:
        target = results_dir.parent / "outside" / relative.replace("/", "-")
        target.mkdir(parents=True)
        (target / "keep.txt").write_text("not bench's")
        link = results_dir / relative
        if link.is_dir():
            (target / "old").mkdir()
            link.rename(target / "old" / link.name)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)

    return change


def damage_pages(results_dir: Path) -> None:
    """Garbage over the store's pages past the first: SQLite still opens it, its pages are bad."""
    path = results_dir / "bench.sqlite"
    data = bytearray(path.read_bytes())
    assert len(data) >= 8 * 4096, len(data)
    data[2 * 4096 : 6 * 4096] = b"\x5a" * (4 * 4096)
    path.write_bytes(bytes(data))


def e2e_files(**overrides: str) -> Setup:
    """E2E's three files, two MRs each, with `overrides` (train, dev, test) as whole texts."""
    rows = 'mr,ref\n"name[A], eatType[pub]",A is a pub.\n"name[B], area[city]",B is in town.\n'
    names = {"train": "trainset.csv", "dev": "devset.csv", "test": "testset_w_refs.csv"}

    def setup(folder: Path) -> None:
        for split, name in names.items():
            data_file(f"e2e/{name}", overrides.get(split, rows))(folder)

    return setup


def gzip_bomb(folder: Path) -> None:
    """A 130 KB file that expands to 128 MiB."""
    (folder / "b.json.gz").write_bytes(gzip.compress(b" " * (128 * 2**20), compresslevel=9))


@dataclass(frozen=True)
class Absent:
    """A module that cannot be imported during the case (Ray, for one)."""

    module: str


@dataclass(frozen=True)
class Plugin:
    """A plugin module, importable (its folder on sys.path) during the case."""

    name: str
    code: str


def real_task_grid(task: str) -> Setup:
    return grid_file(f"name: g\nmodel: mini-tiny\ntasks: [{{name: {task}}}]\nmethods: [{{name: finetune}}]\n")  # noqa: E501


# Six levels of ten aliases each: a few lines that stand for a million values.
ALIAS_BOMB = "name: g\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else '1'] * 10)}]\n" for i in range(6)
)
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
    ("--out in a missing folder", ("export", "--results-dir", "res", "--out", "nodir/x.json"), [with_results()], "nodir is not a folder; create it first"),  # noqa: E501
    ("bundle of short predictions", ("export", "--results-dir", "res", "--format", "bundle", "--out", "b.json.gz"), [with_results(short_predictions)], "has 1 lines but the cell scored 3"),  # noqa: E501
    ("malformed predictions JSONL", ("compare", "res", "res"), [with_results(malformed_predictions)], "malformed"),  # noqa: E501
    ("compare-methods of a missing source", ("compare-methods", "nope"), [], "nope does not exist"),
    ("compare-methods of one method", ("compare-methods", "res"), [with_results()], "no two methods share an experiment"),  # noqa: E501
    # --- predict ------------------------------------------------------------------------------
    ("predict without --cell or --model", ("predict", "--inputs", "in.txt"), [text_file("in.txt", "a\n")], "pass either --cell ID"),  # noqa: E501
    ("predict with --cell and --model", ("predict", "--cell", "x", "--model", "mini", "--inputs", "in.txt"), [text_file("in.txt", "a\n")], "pass either --cell ID"),  # noqa: E501
    ("predict an unknown cell", ("predict", "--cell", "0123456789abcdef", "--inputs", "in.txt", "--results-dir", "res"), [with_results(), text_file("in.txt", "a\n")], "no cell '0123456789abcdef' in res"),  # noqa: E501
    ("predict an empty inputs file", ("predict", "--model", "mini", "--inputs", "in.txt"), [text_file("in.txt", "")], "in.txt is empty"),  # noqa: E501
    ("predict an empty input line", ("predict", "--model", "mini", "--inputs", "in.txt"), [text_file("in.txt", "a\n\nb\n")], "line 2: empty"),  # noqa: E501
    ("predict inputs not UTF-8", ("predict", "--model", "mini", "--inputs", "in.txt"), [text_file("in.txt", b"\xff\xfe a\n")], "not UTF-8 text"),  # noqa: E501
    ("predict inputs a folder", ("predict", "--model", "mini", "--inputs", "in.txt"), [folder_at("in.txt")], "not a regular file"),  # noqa: E501
    ("predict a line past the window", ("predict", "--model", "mini", "--inputs", "in.txt"), [text_file("in.txt", "the pub " * 2000 + "\n")], "shorten it"),  # noqa: E501
    ("predict --set an unknown key", ("predict", "--model", "mini", "--inputs", "in.txt", "--set", "decode.beams=3"), [text_file("in.txt", "a\n")], "decode has no 'beams'"),  # noqa: E501
    ("predict --set outside decode", ("predict", "--model", "mini", "--inputs", "in.txt", "--set", "train.lr=1"), [text_file("in.txt", "a\n")], "write decode.KEY=VALUE"),  # noqa: E501
    ("predict --set nan", ("predict", "--model", "mini", "--inputs", "in.txt", "--set", "decode.length_penalty=.nan"), [text_file("in.txt", "a\n")], "not a finite number"),  # noqa: E501
    ("predict authors with never", ("predict", "--model", "mini", "--inputs", "in.txt", "--set", "decode.rule=authors", "--set", "decode.early_stopping=never"), [text_file("in.txt", "a\n")], "early_stopping: never is a setting"),  # noqa: E501
    ("predict an unknown rule", ("predict", "--model", "mini", "--inputs", "in.txt", "--set", "decode.rule=fairseq"), [text_file("in.txt", "a\n")], "decode.rule: Input should be 'hf' or 'authors'"),  # noqa: E501
    # --- bundles ------------------------------------------------------------------------------
    ("bundle missing", ("compare", "nowhere.json.gz", "res"), [with_results()], "nowhere.json.gz does not exist"),  # noqa: E501
    ("bundle not gzip", ("compare", "b.json.gz", "res"), [with_results(), bundle(b"plain text")], "is not a bundle"),  # noqa: E501
    ("bundle truncated gzip", ("compare", "b.json.gz", "res"), [with_results(), bundle(gzip.compress(b'{"format": "bench-bundle/1"')[:20])], "is not a bundle"),  # noqa: E501
    ("bundle of another format", ("compare", "b.json.gz", "res"), [with_results(), bundle({"format": "bench-bundle/9", "cells": []})], "bench-bundle/9"),  # noqa: E501
    ("bundle with missing keys", ("compare", "b.json.gz", "res"), [with_results(), bundle({"format": "bench-bundle/1", "cells": [{"cell": "x"}]})], "b.json.gz"),  # noqa: E501
    ("compare unknown metric", ("compare", "res", "res", "--metric", "blue"), [with_results()], "unknown metric"),  # noqa: E501
    # --- grids a careless or hostile user writes ----------------------------------------------
    ("YAML nested 200 levels", RUN, [grid_file("name: g\nseeds: " + "[" * 200 + "]" * 200)], "nested more than 40 levels"),  # noqa: E501
    ("YAML nested 5000 levels", RUN, [grid_file("name: g\nseeds: " + "{a: " * 5000 + "1" + "}" * 5000)], "nested more than 40 levels"),  # noqa: E501
    ("YAML alias bomb", RUN, [grid_file(ALIAS_BOMB)], "expands to more than 100,000 values"),
    ("duplicate key", RUN, [tiny("seeds: [0]", "seeds: [0]\nseeds: [1]")], "duplicate key 'seeds'"),
    ("duplicate nested key", RUN, [tiny("epochs: 1", "epochs: 1, epochs: 2")], "duplicate key 'epochs'"),  # noqa: E501
    ("lone surrogate in a label", RUN, [tiny("  - name: prefix\n", '  - name: prefix\n    label: "p\\udc80"\n')], "lone surrogate"),  # noqa: E501
    ("NaN in a grid", RUN, [tiny("num_beams: 2", "num_beams: 2, length_penalty: .nan")], "decode.length_penalty: nan is not a finite number"),  # noqa: E501
    ("infinity in a grid", RUN, [tiny("lr: 1.0e-3", "lr: .inf")], "inf is not a finite number"),
    ("seed past 2^32", RUN, [tiny("seeds: [0]", "seeds: [4294967296]")], "seeds.0: Input should be less than or equal to 4294967295"),  # noqa: E501
    ("negative seed", RUN, [tiny("seeds: [0]", "seeds: [-1]")], "seeds.0: Input should be greater than or equal to 0"),  # noqa: E501
    ("integer past SQLite's", RUN, [tiny("n_train: [40]", "n_train: [99999999999999999999]")], "is out of range"),  # noqa: E501
    ("millions of samples", RUN, [tiny("n_train: [40]", "n_train: [40]\n    samples: 1000000")], "would make 2,000,002 cells"),  # noqa: E501
    ("tens of thousands of seeds", RUN, [tiny("seeds: [0]", f"seeds: {list(range(60000))}")], "would make 240,000 cells"),  # noqa: E501
    ("grid file is a folder", ("run", "--grid", "d.yaml"), [folder_at("d.yaml")], "is not a regular file"),  # noqa: E501
    ("grid file is a FIFO", ("run", "--grid", "f.yaml"), [fifo_at("f.yaml")], "is not a regular file"),  # noqa: E501
    ("grid file of 1 MiB", RUN, [grid_file("#" * 2**20 + "\n")], "is over 1 MiB"),
    ("--model not UTF-8", (*RUN, "--model", "mini\udcff"), [tiny("", "")], "lone surrogate"),
    ("unknown task with markup", RUN, [tiny("name: mini-e2e", "name: 'x[/]y'")], "unknown task 'x[/]y'"),  # noqa: E501
    ("unknown method with markup", RUN, [tiny("name: prefix", "name: '[bold]prefix'")], "unknown method '[bold]prefix'"),  # noqa: E501
    # --- plugins ------------------------------------------------------------------------------
    ("plugin raising", (*RUN, "--plugin", "boom_plugin"), [tiny("", ""), Plugin("boom_plugin", "raise RuntimeError('boom')\n")], "failed on import: RuntimeError: boom"),  # noqa: E501
    ("plugin with a syntax error", (*RUN, "--plugin", "syntax_plugin"), [tiny("", ""), Plugin("syntax_plugin", "def (:\n")], "failed on import: SyntaxError"),  # noqa: E501
    ("grid plugin raising", RUN, [tiny("model: mini-tiny", "model: mini-tiny\nplugins: [grid_plugin]"), Plugin("grid_plugin", "1 / 0\n")], "failed on import: ZeroDivisionError"),  # noqa: E501
    # --- options ------------------------------------------------------------------------------
    ("--tolerance nan", (*RUN, "--tolerance", "nan"), [tiny("", "")], "'nan' is not a finite number"),  # noqa: E501
    ("--tolerance inf", (*RUN, "--tolerance", "inf"), [tiny("", "")], "'inf' is not a finite number"),  # noqa: E501
    ("--checkpoint-minutes nan", (*RUN, "--checkpoint-minutes", "nan"), [tiny("", "")], "not a finite number"),  # noqa: E501
    ("--cpus-per-cell nan", (*RUN, "--cpus-per-cell", "nan"), [tiny("", "")], "not a finite number"),  # noqa: E501
    ("--max-retries 1000", (*RUN, "--max-retries", "1000"), [tiny("", "")], "1000 is not in the range"),  # noqa: E501
    ("compare --tolerance nan", ("compare", "res", "res", "--tolerance", "nan"), [with_results()], "not a finite number"),  # noqa: E501
    ("--executor ray without Ray", (*RUN, "--executor", "ray"), [tiny("", ""), Absent("ray")], "--executor ray needs Ray"),  # noqa: E501
    ("--out a folder", ("export", "--results-dir", "res", "--format", "bundle", "--out", "o"), [with_results(), folder_at("o")], "exists and is not a regular file"),  # noqa: E501
    ("--out a device", ("export", "--results-dir", "res", "--format", "bundle", "--out", "/dev/full"), [with_results()], "exists and is not a regular file"),  # noqa: E501
    ("--out in no folder", ("export", "--results-dir", "res", "--format", "bundle", "--out", "no/b.gz"), [with_results()], "no is not a folder"),  # noqa: E501
    ("perf --out a folder", ("perf", "overhead", "--out", "o"), [folder_at("o")], "exists and is not a regular file"),  # noqa: E501
    # --- results directories ------------------------------------------------------------------
    ("results dir a dangling link", RUN, [tiny("", ""), link_at("r", "nowhere")], "is a symlink to nowhere, which does not exist"),  # noqa: E501
    ("results dir a link loop", RUN, [tiny("", ""), link_at("r", "r")], "a symlink loop"),
    ("results dir path too long", ("run", "--grid", "g.yaml", "--results-dir", "r" * 300), [tiny("", "")], "a path too long"),  # noqa: E501
    ("results dir not UTF-8", ("run", "--grid", "g.yaml", "--results-dir", "r\udcff"), [tiny("", "")], "is not valid UTF-8"),  # noqa: E501
    ("report dir not UTF-8", ("report", "--results-dir", "r\udcff"), [], "is not valid UTF-8"),
    ("store a folder", ("run", "--grid", "g.yaml", "--results-dir", "r"), [tiny("", ""), folder_at("r/bench.sqlite")], "is not a file"),  # noqa: E501
    ("reports a file", ("report", "--results-dir", "res"), [with_results(lambda f: (f / "reports").write_text("x"))], "is not a folder"),  # noqa: E501
    ("reports a link out", ("report", "--results-dir", "res"), [with_results(outside("reports"))], "leads out of the results directory"),  # noqa: E501
    ("a report a link out", ("report", "--results-dir", "res"), [with_results(outside("reports/tiny"))], "leads out of the results directory"),  # noqa: E501
    ("run: reports a link out", ("run", "--grid", "g.yaml", "--results-dir", "res"), [tiny("", ""), with_results(outside("reports"))], "leads out of the results directory"),  # noqa: E501
    ("run: cells a link out", ("run", "--grid", "g.yaml", "--results-dir", "res"), [tiny("", ""), with_results(outside("cells"))], "leads out of the results directory"),  # noqa: E501
    ("report of damaged pages", ("report", "--results-dir", "res"), [with_results(damage_pages)], "damaged"),  # noqa: E501
    ("export of damaged pages", ("export", "--results-dir", "res"), [with_results(damage_pages)], "damaged"),  # noqa: E501
    ("run into damaged pages", ("run", "--grid", "g.yaml", "--results-dir", "res"), [tiny("", ""), with_results(damage_pages)], "damaged"),  # noqa: E501
    # --- data files ---------------------------------------------------------------------------
    ("data file a folder", ("run", "--grid", "g.yaml", "--data-dir", "data"), [E2E_GRID, e2e_files(), lambda f: (f / "data/e2e/trainset.csv").unlink(), folder_at("data/e2e/trainset.csv")], "is a folder, where a data file belongs"),  # noqa: E501
    ("data file a FIFO", ("run", "--grid", "g.yaml", "--data-dir", "data"), [E2E_GRID, e2e_files(), lambda f: (f / "data/e2e/devset.csv").unlink(), fifo_at("data/e2e/devset.csv")], "is not a regular file (a pipe or a device)"),  # noqa: E501
    ("data file /dev/zero", ("run", "--grid", "g.yaml", "--data-dir", "data"), [E2E_GRID, e2e_files(), lambda f: (f / "data/e2e/trainset.csv").unlink(), link_at("data/e2e/trainset.csv", "/dev/zero")], "is not a regular file (a pipe or a device)"),  # noqa: E501
    ("test file a header only", ("run", "--grid", "g.yaml", "--data-dir", "data"), [E2E_GRID, e2e_files(test="mr,ref\n")], "its test split has no examples"),  # noqa: E501
    ("train file a header only", ("run", "--grid", "g.yaml", "--data-dir", "data"), [E2E_GRID, e2e_files(train="mr,ref\n")], "its train split has no examples"),  # noqa: E501
    ("predictions a FIFO", ("score", "--task", "mini-e2e", "--predictions", "p.txt"), [fifo_at("p.txt")], "p.txt: not a regular file"),  # noqa: E501
    # --- bundles ------------------------------------------------------------------------------
    ("bundle that expands to 128 MiB", ("compare", "b.json.gz", "res"), [with_results(), gzip_bomb], "expands past"),  # noqa: E501
]


TINY_GRID_PATH = ""


@pytest.fixture(autouse=True)
def tiny_grid_path(tmp_path_factory: pytest.TempPathFactory) -> None:
    global TINY_GRID_PATH
    path = tmp_path_factory.mktemp("grid") / "tiny.yaml"
    path.write_text(TINY_GRID)
    TINY_GRID_PATH = str(path)


@pytest.mark.parametrize(("args", "setups", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # noqa: E501
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, monkeypatch, capsys, args, setups, message
):
    for setup in setups:
        if isinstance(setup, Absent):
            monkeypatch.setitem(sys.modules, setup.module, None)
        elif isinstance(setup, Plugin):
            (tmp_path / "plugins").mkdir(exist_ok=True)
            (tmp_path / "plugins" / f"{setup.name}.py").write_text(setup.code)
            monkeypatch.syspath_prepend(tmp_path / "plugins")
        else:
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


def test_there_are_at_least_100_cases_over_every_subcommand():
    assert len(CASES) >= 100 and len({name for name, *_ in CASES}) == len(CASES)
    commands = {args[0] for _, args, _, _ in CASES}
    assert commands >= {
        "run", "report", "export", "compare", "list", "params", "data", "score", "perf", "predict"
    }  # fmt: skip
    assert os.path.basename(__file__) == "test_bad_input.py"
