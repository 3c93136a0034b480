"""Experiment tracking: each cell a run finishes, logged to MLflow and/or TensorBoard.

`run --track mlflow[=URI]` and `--track tensorboard[=DIR]` make one `Tracker` each. The runner
(the driver, never a worker) hands a tracker each cell's record once the store holds it: one
MLflow run or one TensorBoard folder per cell, with its resolved config, per-step training loss
and per-epoch dev loss, scores per split and metric, parameter counts, phase timings, the
hardware and the predictions. Cells already stored are not logged again. The store stays the
record: a tracker that cannot open or log costs a warning line, never a cell.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from bench.engine.record import CellRecord
from bench.errors import UserError
from bench.results.paths import inside
from bench.results.store import predictions_file

INSTALL = "pip install -c constraints.txt -e '.[track]'"
MLFLOW_BATCH = 100  # MLflow takes at most 100 params (and 1000 metrics) per log_batch call
SHOWN_PREDICTIONS = 10  # TensorBoard has no artifacts: the first outputs as text, and the file


class Tracker(Protocol):
    name: str  # what a warning names: "mlflow (URI)", "tensorboard (DIR)"

    def open(self) -> None:
        """Connect, create what is missing; called once, before the first cell is logged."""

    def log_cell(self, record: CellRecord, folder: Path) -> None:
        """Log one stored cell; `folder` is its cell folder (predictions files)."""

    def close(self) -> None: ...


def make_trackers(specs: Sequence[str], results_dir: Path, grid: str) -> list[Tracker]:
    """A tracker per `--track` value ("mlflow", "mlflow=URI", "tensorboard", "tensorboard=DIR"),
    refused (as a `UserError`) when unknown, repeated or its packages are not installed."""
    trackers: list[Tracker] = []
    seen = set()
    for spec in specs:
        kind, _, where = spec.partition("=")
        if kind not in ("mlflow", "tensorboard") or ("=" in spec and not where):
            raise UserError(
                f"--track {spec!r}: use mlflow, mlflow=URI, tensorboard or tensorboard=DIR"
            )
        if kind in seen:
            raise UserError(f"--track {kind} is given twice; keep one")
        seen.add(kind)
        if kind == "mlflow":
            trackers.append(MlflowTracker(results_dir, grid, where or None))
        else:
            trackers.append(TensorBoardTracker(results_dir, grid, where or None))
    return trackers


def _require(kind: str, packages: Sequence[str]) -> None:
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise UserError(f"--track {kind} needs {', '.join(missing)}: {INSTALL}")


def flat(config: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """A nested config as (dotted key, value) pairs: train.lr, settings.length, ..."""
    for key, value in config.items():
        if isinstance(value, dict) and value:
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MlflowTracker:
    """One MLflow run per cell in the experiment named after the grid. Without a URI, a SQLite
    store under the results directory (MLflow 3 refuses plain-folder stores by default)."""

    def __init__(self, results_dir: Path, grid: str, uri: str | None) -> None:
        default = uri is None
        _require("mlflow", ("mlflow", *(("sqlalchemy", "alembic") if default else ())))
        self.grid = grid
        self.folder = inside(results_dir, "mlflow") if default else None
        self.uri = uri or f"sqlite:///{(results_dir / 'mlflow' / 'mlflow.db').absolute()}"
        self.name = f"mlflow ({self.uri})"
        self.client: Any = None
        self.experiment = ""

    def open(self) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # table creation
        artifacts = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            artifacts = (self.folder / "artifacts").absolute().as_uri()
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(self.grid)
        if found is None:
            try:
                self.experiment = self.client.create_experiment(self.grid, artifacts)
                return
            except MlflowException:  # another runner created it meanwhile
                found = self.client.get_experiment_by_name(self.grid)
                if found is None:
                    raise
        self.experiment = found.experiment_id

    def log_cell(self, record: CellRecord, folder: Path) -> None:
        from mlflow.entities import Metric, Param

        cell = record.cell
        tags = {"grid": self.grid, "cell": cell.id, "task": cell.task, "method": cell.method}
        if record.provenance.get("git_sha"):
            tags["mlflow.source.git.commit"] = record.provenance["git_sha"]
        run = self.client.create_run(self.experiment, run_name=cell.describe(), tags=tags)
        run_id = run.info.run_id
        try:
            config = cell.model_dump(mode="json")
            hardware = record.provenance.get("hardware") or {}
            params = [Param(k, _text(v)) for k, v in flat(config)]
            params += [Param(f"hardware.{k}", _text(v)) for k, v in hardware.items()]
            for chunk in _chunks(params, MLFLOW_BATCH):
                self.client.log_batch(run_id, params=chunk)
            now = int(time.time() * 1000)
            metrics = [Metric("train_loss", v, now, s) for s, v in record.losses.get("train", [])]
            metrics += [Metric("dev_loss", v, now, e) for e, v in record.losses.get("dev", [])]
            metrics += [Metric(f"{s.split}/{s.metric}", s.value, now, 0) for s in record.scores]
            counts = record.params
            metrics += [
                Metric(f"params/{name}", float(getattr(counts, name)), now, 0)
                for name in ("trained", "stored", "total", "stored_bytes")
            ]
            metrics += [Metric(f"seconds/{k}", v, now, 0) for k, v in record.timings.items()]
            for chunk in _chunks(metrics, 10 * MLFLOW_BATCH):
                self.client.log_batch(run_id, metrics=chunk)
            self.client.log_dict(run_id, config, "config.json")
            self.client.log_dict(run_id, record.provenance, "provenance.json")
            for split in record.predictions:
                self.client.log_artifact(
                    run_id, str(predictions_file(folder, split)), "predictions"
                )
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")

    def close(self) -> None:
        self.client = None


class TensorBoardTracker:
    """One event folder per cell, `<DIR>/<grid>/<cell>`; without a DIR, `<results>/tensorboard`.
    A forced rerun replaces its cell's folder."""

    def __init__(self, results_dir: Path, grid: str, logdir: str | None) -> None:
        _require("tensorboard", ("tensorboard",))
        root = Path(logdir) if logdir else inside(results_dir, "tensorboard")
        self.root = root / _safe(grid)
        self.name = f"tensorboard ({root})"

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def log_cell(self, record: CellRecord, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        cell = record.cell
        out = self.root / f"{_safe(cell.describe())}-{cell.id}"
        shutil.rmtree(out, ignore_errors=True)
        config = cell.model_dump(mode="json")
        scores = {f"{s.split}/{s.metric}": s.value for s in record.scores}
        with SummaryWriter(log_dir=str(out)) as writer:
            for step, loss in record.losses.get("train", []):
                writer.add_scalar("loss/train", loss, step)
            for epoch, loss in record.losses.get("dev", []):
                writer.add_scalar("loss/dev", loss, epoch)
            for tag, value in scores.items():
                writer.add_scalar(tag, value, 0)
            for name in ("trained", "stored", "total", "stored_bytes"):
                writer.add_scalar(f"params/{name}", getattr(record.params, name), 0)
            for phase, seconds in record.timings.items():
                writer.add_scalar(f"seconds/{phase}", seconds, 0)
            # the HParams dashboard: the cells' configs side by side with their scores
            values = {
                k: v if isinstance(v, int | float | str) else _text(v) for k, v in flat(config)
            }
            for summary in hparams(values, scores):
                writer.file_writer.add_summary(summary)
            writer.add_text("config", _code(config))
            writer.add_text("hardware", _code(record.provenance.get("hardware") or {}))
            writer.add_text("provenance", _code(record.provenance))
            for split, outputs in record.predictions.items():
                shown = [{"source": p.source, "prediction": p.prediction} for p in outputs]
                path = predictions_file(folder, split)
                writer.add_text(
                    f"predictions/{split}",
                    f"{len(outputs)} outputs in `{path}`; the first {SHOWN_PREDICTIONS}:\n\n"
                    + _code(shown[:SHOWN_PREDICTIONS]),
                )

    def close(self) -> None:
        pass


def _code(value: Any) -> str:
    """JSON as a Markdown code block (TensorBoard renders text as Markdown)."""
    body = json.dumps(value, indent=2, ensure_ascii=False)
    return "\n".join("    " + line for line in body.splitlines())


def _safe(name: str) -> str:
    """A folder name from a label: letters, digits and . = - only."""
    return re.sub(r"[^\w.=-]+", "_", name).strip("_") or "_"
