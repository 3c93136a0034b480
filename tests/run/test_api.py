"""The Python API (`bench.run_grid`, `bench.load_results`) and the cell as a pure function."""

from __future__ import annotations

import inspect
import json
import re

import pytest
from safetensors.torch import load

import bench
from bench.engine.cell import run_cell
from bench.engine.generation import generate
from bench.engine.training import train
from bench.errors import UserError
from bench.results.store import Store, cell_dir, predictions_file, write_record
from bench.run.runner import run_cells
from bench.spec.grid import expand, load_grid
from tests.conftest import TINY_GRID
from tests.runs import ROOT

E2E_ONLY = (
    TINY_GRID[: TINY_GRID.index("  - name: mini-webnlg")] + TINY_GRID[TINY_GRID.index("methods:") :]
)


@pytest.mark.slow
def test_run_a_grid_from_python_then_read_its_results_as_a_frame(tmp_path):
    grid = tmp_path / "e2e.yaml"
    grid.write_text(E2E_ONLY.replace("name: tiny", "name: tiny-e2e"))
    run = bench.run_grid(grid, results_dir=tmp_path / "r")
    done = sorted(c.method for c in run.summary.done)  # side by side: in the order they finish
    assert done == ["finetune", "prefix"] and not run.summary.failed
    assert run.report.name == "index.html" and run.report.is_file()

    database = tmp_path / "r" / "bench.sqlite"
    before = database.stat().st_mtime_ns, database.read_bytes()
    frame = bench.load_results(tmp_path / "r", grid="tiny-e2e")
    assert (database.stat().st_mtime_ns, database.read_bytes()) == before  # reading never writes
    assert len(frame) == 2 * 2  # two cells x one split x (bleu, rouge_l)
    assert {"method", "settings", "seed", "n_train", "ood", "split", "metric", "value"} <= set(
        frame.columns
    )
    assert {"trained_params", "stored_params", "total_params"} <= set(frame.columns)
    prefix = frame[frame["method"] == "prefix"].iloc[0]
    assert prefix["settings"]["length"] == 4 and prefix["n_train"] == 40 and not prefix["ood"]
    assert prefix["stored_params"] < prefix["trained_params"] < prefix["total_params"]

    again = bench.run_grid(grid, results_dir=tmp_path / "r")
    assert len(again.summary.skipped) == 2 and not again.summary.done


@pytest.mark.slow
def test_a_cell_is_computed_without_writing_and_its_record_written_in_one_place(
    tmp_path, tiny_grid, monkeypatch
):
    cell = next(c for c in expand(load_grid(str(tiny_grid))[0]) if c.method == "prefix")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    record = run_cell(cell, None)
    assert set(tmp_path.iterdir()) == {tmp_path / "cwd", tiny_grid}  # nothing written
    assert list((tmp_path / "cwd").iterdir()) == []
    assert record.cell == cell and record.timings.keys() == {"setup", "train", "generate", "score"}
    assert {s.metric for s in record.scores} == {"bleu", "rouge_l"}
    assert len(record.predictions["test"]) == cell.eval_limit
    weights = load(record.stored)
    assert set(weights) == {"prefix"} and record.params.stored == weights["prefix"].numel()
    assert record.params.stored_bytes == len(record.stored)
    assert record.provenance["train_examples"] == 40 and record.losses["train"]
    assert record.provenance["precision"] == "fp32"  # auto, resolved on CPU
    decoding = record.provenance["decoding"]  # the eval inputs, one batch, no halving
    assert decoding["batches"] == 1 and decoding["oom_halvings"] == 0
    outputs = {p.source: p.prediction for p in record.predictions["test"]}
    assert decoding["new_tokens"] >= sum(len(o.split()) for o in outputs.values())

    store = Store(tmp_path / "r" / "bench.sqlite")
    store.start_cell(cell.id, cell.model_dump(mode="json"))
    write_record(store, tmp_path / "r", record)
    assert store.status(cell.id) == "done"
    folder = cell_dir(tmp_path / "r", cell.id)
    lines = predictions_file(folder, "test").read_text().splitlines()
    assert [json.loads(line)["prediction"] for line in lines] == [
        p.prediction for p in record.predictions["test"]
    ]
    assert (folder / "stored.safetensors").read_bytes() == record.stored


def _bare(signature: inspect.Signature) -> inspect.Signature:
    return signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )


def test_the_readme_states_run_grids_signature_and_options_are_keywords():
    readme = " ".join((ROOT / "README.md").read_text().split())
    match = re.search(r"`run_grid\((.*?)\)` takes", readme)
    assert match, "README's Python API states run_grid's signature"
    namespace: dict = {}
    exec(f"def run_grid({match.group(1)}): pass", namespace)
    assert inspect.signature(namespace["run_grid"]) == _bare(inspect.signature(bench.run_grid))
    keyword_only = inspect.Parameter.KEYWORD_ONLY
    for function, first_option in (
        (bench.run_grid, "results_dir"),
        (run_cells, "force"),
        (train, "progress"),
        (generate, "progress"),
    ):
        parameters = list(inspect.signature(function).parameters.values())
        options = parameters[[p.name for p in parameters].index(first_option) :]
        assert all(p.kind is keyword_only for p in options), function.__name__


def test_non_finite_numbers_are_refused_before_anything_is_written(tmp_path):
    from bench.errors import UserError
    from bench.results.bundle import ResultsSource
    from bench.results.compare import compare_sources

    with pytest.raises(UserError, match="checkpoint_minutes nan is not a number"):
        bench.run_grid("mini", results_dir=tmp_path / "r", checkpoint_minutes=float("nan"))
    assert not (tmp_path / "r").exists()
    nothing = ResultsSource("none", [])
    with pytest.raises(UserError, match="tolerance nan is not a finite number"):
        compare_sources(nothing, nothing, tolerance=float("nan"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"executor": "threads"}, "unknown executor 'threads'; choose one of auto, local"),
        ({"cpus_per_cell": 0}, "cpus_per_cell 0 is not a whole number >= 1"),
        ({"cpus_per_cell": 1.5}, "cpus_per_cell 1.5 is not a whole number >= 1"),
    ],
)
def test_a_bad_executor_option_is_refused_before_anything_is_written(tmp_path, options, message):
    with pytest.raises(UserError, match=re.escape(message)):
        bench.run_grid("mini", results_dir=tmp_path / "r", **options)
    assert not (tmp_path / "r").exists()
