"""`run --track`: each cell run is logged to MLflow and TensorBoard by the driver, read back here
through MLflow's client and TensorBoard's event reader; a tracker's failure never costs a cell."""

from __future__ import annotations

import importlib.util
import io
import json
import sqlite3

import pytest
from rich.console import Console

from bench.progress import make_progress
from bench.results.store import Store, cell_dir, predictions_file
from bench.run import executor, runner, tracking
from bench.spec.grid import expand, load_grid
from tests.records import fake_record
from tests.runs import bench_here as bench

pytest.importorskip("mlflow", reason="tracking needs the `track` extra: pip install -e '.[track]'")
pytest.importorskip("tensorboard", reason="tracking needs the `track` extra")
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# One prefix cell of two epochs, with a dev loss per epoch: a few seconds on 2 cores.
GRID = """
name: tracked
model: mini-tiny
tasks:
  - {name: mini-e2e, n_train: [16], eval_limit: 4}
methods:
  - name: prefix
    settings: {length: 4, mlp_hidden: 16}
    train: {lr: 5.0e-3}
train: {epochs: 2, batch_size: 4, dev_examples: 4}
decode: {num_beams: 1, max_new_tokens: 8}
"""


@pytest.fixture
def grid(tmp_path):
    path = tmp_path / "tracked.yaml"
    path.write_text(GRID)
    return path


@pytest.mark.slow
def test_a_cell_is_logged_to_mlflow_and_tensorboard_and_read_back(
    tmp_path, grid, monkeypatch, capsys
):
    results = tmp_path / "r"
    args = ("run", "--grid", str(grid), "--results-dir", str(results), "--executor", "local")
    code, _, err = bench(monkeypatch, capsys, *args, "--track", "mlflow", "--track", "tensorboard")
    assert code == 0, err
    assert "warning" not in err
    store = Store.open_existing(results)
    (row,) = store.runs("tracked")
    cell_id = row["cell"]
    config = json.loads(row["config"])
    train_losses, dev_losses = store.losses(cell_id, "train"), store.losses(cell_id, "dev")
    scores = {(r["split"], r["metric"]): r["value"] for r in store.results("tracked")}
    counts = store.db.execute("SELECT * FROM params WHERE cell = ?", (cell_id,)).fetchone()
    provenance = json.loads(row["provenance"])
    store.close()
    assert len(train_losses) >= 8 and len(dev_losses) == 2  # 16 pairs / 4 a batch x 2 epochs

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["cell"] == cell_id
    params = run.data.params
    assert params["train.lr"] == "0.005" and params["settings.length"] == "4"
    assert params["method"] == "prefix" and params["n_train"] == "16"
    assert params["hardware.cpu_model"] == str(provenance["hardware"]["cpu_model"])
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == pytest.approx(train_losses)
    dev = client.get_metric_history(run.info.run_id, "dev_loss")
    assert sorted((m.step, m.value) for m in dev) == pytest.approx(dev_losses)
    metrics = run.data.metrics
    assert {k: metrics[f"{k[0]}/{k[1]}"] for k in scores} == pytest.approx(scores)
    assert metrics["params/trained"] == counts["trained"] > 0
    assert metrics["params/stored"] == counts["stored"]
    assert metrics["params/total"] == counts["total"]
    assert metrics["seconds/train"] > 0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"config.json", "provenance.json", "predictions"}
    client.download_artifacts(run.info.run_id, "", str(tmp_path / "downloaded"))
    stored = predictions_file(cell_dir(results, cell_id), "test")
    assert (tmp_path / "downloaded" / "predictions" / "test.jsonl").read_bytes() == (
        stored.read_bytes()
    )
    assert json.loads((tmp_path / "downloaded" / "config.json").read_text()) == config

    (events,) = (results / "tensorboard" / "tracked").iterdir()
    assert events.name.endswith(cell_id)
    reader = EventAccumulator(str(events))
    reader.Reload()
    loss = [(e.step, e.value) for e in reader.Scalars("loss/train")]
    assert loss == pytest.approx(train_losses)
    assert [(e.step, e.value) for e in reader.Scalars("loss/dev")] == pytest.approx(dev_losses)
    for (split, metric), value in scores.items():
        assert reader.Scalars(f"{split}/{metric}")[0].value == pytest.approx(value)
    assert reader.Scalars("params/trained")[0].value == counts["trained"]
    texts = set(reader.Tags()["tensors"])
    assert {"config/text_summary", "hardware/text_summary", "predictions/test/text_summary"} <= (
        texts
    )
    hardware = reader.Tensors("hardware/text_summary")[0].tensor_proto.string_val[0].decode()
    assert provenance["hardware"]["cpu_model"] in hardware

    code, _, err = bench(monkeypatch, capsys, *args, "--track", "mlflow", "--track", "tensorboard")
    assert code == 0 and "0 run, 1 already done" in err
    assert len(client.search_runs([experiment.experiment_id])) == 1  # a stored cell: not again


def test_a_missing_extra_or_a_bad_value_stops_the_run_before_anything(
    tmp_path, grid, monkeypatch, capsys
):
    results = tmp_path / "r"
    args = ("run", "--grid", str(grid), "--results-dir", str(results))
    code, _, err = bench(monkeypatch, capsys, *args, "--track", "wandb")
    assert code == 2 and "--track 'wandb': use mlflow, mlflow=URI" in err
    code, _, err = bench(monkeypatch, capsys, *args, "--track", "mlflow", "--track", "mlflow=x")
    assert code == 2 and "--track mlflow is given twice" in err

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name)
    )
    code, _, err = bench(monkeypatch, capsys, *args, "--track", "mlflow")
    assert code == 2
    assert err.strip() == (
        "error: --track mlflow needs mlflow: pip install -c constraints.txt -e '.[track]'"
    )
    assert not results.exists()


def test_a_failing_tracker_costs_a_warning_line_never_a_cell(tmp_path, tiny_grid, monkeypatch):
    cells = expand(load_grid(str(tiny_grid))[0])
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("tiny", "", [c.id for c in cells])
    monkeypatch.setattr(executor, "run_cell", lambda cell, *args: fake_record(cell))
    unreachable = tracking.MlflowTracker(tmp_path, "tiny", "sqlite:////proc/no/such/mlflow.db")
    board = tracking.TensorBoardTracker(tmp_path, "tiny", None)
    calls = []

    def broken(record, folder):
        calls.append(record.cell.id)
        raise OSError("disk full")

    monkeypatch.setattr(board, "log_cell", broken)
    out = io.StringIO()
    with make_progress(Console(file=out, width=200)) as progress:
        summary = runner.run_cells(
            cells, store, tmp_path, None, progress=progress, trackers=[unreachable, board]
        )
    assert len(summary.done) == len(cells) == 4 and not summary.failed
    assert all(store.status(c.id) == "done" for c in cells)
    assert calls == [c.id for c in cells]  # the grid went on, and tried each cell
    lines = out.getvalue().splitlines()
    off = [line for line in lines if line.startswith("warning: mlflow")]
    assert len(off) == 1 and "is off for this run: FileNotFoundError" in off[0]
    skipped = [line for line in lines if line.startswith("warning: tensorboard")]
    assert len(skipped) == 4 and all("did not log" in s and "disk full" in s for s in skipped)
    assert sqlite3.connect(tmp_path / "bench.sqlite").execute(
        "SELECT count(*) FROM runs WHERE status = 'done'"
    ).fetchone() == (4,)


def test_a_given_uri_and_folder_are_used_and_a_forced_rerun_logs_anew(
    tmp_path, tiny_grid, monkeypatch
):
    cells = expand(load_grid(str(tiny_grid))[0])
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid("tiny", "", [c.id for c in cells])
    monkeypatch.setattr(executor, "run_cell", lambda cell, *args: fake_record(cell, bleu=7.0))
    monkeypatch.chdir(tmp_path)  # MLflow keeps a given store's artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'own.db'}"
    for force in (False, True):
        trackers = [
            tracking.MlflowTracker(tmp_path, "tiny", uri),
            tracking.TensorBoardTracker(tmp_path, "tiny", str(tmp_path / "boards")),
        ]
        runner.run_cells(cells, store, tmp_path, None, force=force, trackers=trackers)
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert sorted(r.data.tags["cell"] for r in runs) == sorted(2 * [c.id for c in cells])
    assert all(r.data.metrics["test/bleu"] == 7.0 for r in runs)
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "tensorboard").exists()
    folders = sorted((tmp_path / "boards" / "tiny").iterdir())
    assert [f.name[-16:] for f in folders] == sorted(c.id for c in cells)
    for folder in folders:  # a forced rerun replaced the folder: one value, not two
        reader = EventAccumulator(str(folder))
        reader.Reload()
        assert [e.value for e in reader.Scalars("test/bleu")] == [7.0]
