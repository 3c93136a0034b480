"""Results sources for comparison: a results directory or a bundle, read into one shape.

A regression gate compares two sets of results, and the paired bootstrap needs each system's
output on every test input, not just its scores. A results directory has them in
`cells/<id>/predictions/<split>.jsonl`; a **bundle** (`bench export --format bundle`) carries the
same in one gzip JSON file, so a baseline can be committed and compared without the original
results directory or any data files (each prediction row keeps its references).

Bundle layout (`format`: `bench-bundle/1`)::

    {"format": "bench-bundle/1", "grid": NAME | null (all grids),
     "cells": [{"id", "config" (the resolved cell config), "grids": [names],
                "provenance" (package versions, git sha, hardware of the run),
                "params": {"trained", "stored", "total", "stored_bytes"},
                "scores": [{"split", "ood" (0: ID, 1: OOD, 2: all), "metric", "value", "n",
                            "low", "high"}],
                "predictions": {split: [{"source", "prediction", "references"}]}}]}

Only finished cells are bundled. Scores stay on the official scorer's scale, as in the store.
Both kinds of source yield the same `CellResults` (a cell's identity comes from its resolved
config either way), so a results directory compared with its own bundle matches cell for cell.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.results.store import Store, cell_dir, predictions_file
from bench.spec.task import split_tag

FORMAT = "bench-bundle/1"


@dataclass(frozen=True, order=True)
class CellKey:
    """What makes two cells "the same experiment" across code versions: not the cell id, which
    also hashes training and decoding settings, model checkpoint and data version (a change under
    test may alter any of those), but the experiment's coordinates."""

    task: str
    method: str
    settings: str  # resolved settings as canonical JSON
    model: str  # the spec (`mini`), not the checkpoint hash: a new mini LM is a change to test
    n_train: int  # -1: all of the training data (keeps keys sortable)
    sample: int
    seed: int

    @classmethod
    def of(cls, config: dict[str, Any]) -> CellKey:
        n_train = config.get("n_train")
        return cls(
            task=config["task"],
            method=config["method"],
            settings=json.dumps(config.get("settings", {}), sort_keys=True),
            model=config["model"],
            n_train=-1 if n_train is None else int(n_train),
            sample=int(config.get("sample", 0)),
            seed=int(config["seed"]),
        )


@dataclass(frozen=True)
class SplitOutputs:
    """A cell's outputs on one split, in the task's input order."""

    sources: list[str]
    predictions: list[str]
    references: list[list[str]]


@dataclass(frozen=True)
class StoredScore:
    value: float  # official scale
    ood: int  # the split's code: 0 ID, 1 OOD, 2 all (older bundles: false, true)
    n: int
    low: float | None
    high: float | None

    @property
    def tag(self) -> str:
        return split_tag(self.ood)


@dataclass(frozen=True)
class CellResults:
    """One finished cell: its resolved config, scores, parameter counts and outputs."""

    id: str
    config: dict[str, Any]
    grids: list[str]
    provenance: dict[str, Any]
    params: dict[str, int]
    scores: dict[str, dict[str, StoredScore]]  # split -> metric -> score
    outputs: dict[str, SplitOutputs]  # split -> outputs; absent when the files are missing

    @property
    def key(self) -> CellKey:
        return CellKey.of(self.config)

    def describe(self, seeds: Sequence[int] = ()) -> str:
        """Label, training size and seed (or the `seeds` of a row over several): enough to tell
        cells of one task apart in a table."""
        size = "" if self.config.get("n_train") is None else f" n={self.config['n_train']}"
        sample = f" sample {self.config['sample']}" if self.config.get("sample") else ""
        seed = f"seeds {','.join(map(str, seeds))}" if seeds else f"seed {self.config['seed']}"
        return f"{self.config['label']}{size}{sample} {seed}"


@dataclass(frozen=True)
class ResultsSource:
    """Finished cells read from a results directory or a bundle; `name` is the path given."""

    name: str
    cells: list[CellResults]


def load_source(path: Path, grid: str | None = None) -> ResultsSource:
    """A results directory (with bench.sqlite) or a bundle file; `grid` keeps that grid's cells.

    Bad input (a missing path, something that is neither, an unknown grid) is a `UserError`.
    """
    if path.is_dir():
        if not (path / "bench.sqlite").is_file():
            raise UserError(
                f"{path} is not a results directory (no bench.sqlite) nor a bundle "
                "(`python -m bench export --format bundle --out FILE`)"
            )
        cells = _read_results_dir(path, grid)
    elif path.is_file():
        cells = _read_bundle(path)
        if grid is not None:
            known = sorted({g for cell in cells for g in cell.grids})
            cells = [cell for cell in cells if grid in cell.grids]
            if not cells:
                raise UserError(f"no grid {grid!r} in {path}; grids there: {_names(known)}")
    else:
        raise UserError(f"{path} does not exist; pass a results directory or a bundle file")
    return ResultsSource(str(path), cells)


def _names(names: list[str]) -> str:
    return ", ".join(names) or "none"


def _read_results_dir(results_dir: Path, grid: str | None) -> list[CellResults]:
    store = Store.open_existing(results_dir)
    try:
        store.check_grid(grid)
        grids: dict[str, list[str]] = {}
        scores: dict[str, dict[str, dict[str, StoredScore]]] = {}
        params: dict[str, dict[str, int]] = {}
        for row in store.results(grid):  # finished cells only; a row per grid holding the cell
            grids.setdefault(row["cell"], [])
            if row["grid"] not in grids[row["cell"]]:
                grids[row["cell"]].append(row["grid"])
            scores.setdefault(row["cell"], {}).setdefault(row["split"], {})[row["metric"]] = (
                StoredScore(row["value"], int(row["ood"]), row["n"], row["low"], row["high"])
            )
            params[row["cell"]] = {
                "trained": row["trained_params"],
                "stored": row["stored_params"],
                "total": row["total_params"],
                "stored_bytes": row["stored_bytes"],
            }
        runs = {run["cell"]: run for run in store.runs(grid) if run["cell"] in grids}
    finally:
        store.close()
    return [
        CellResults(
            id=cell,
            config=json.loads(runs[cell]["config"]),
            grids=grids[cell],
            provenance=json.loads(runs[cell]["provenance"] or "{}"),
            params=params[cell],
            scores=scores[cell],
            outputs=_read_predictions(results_dir, cell, list(scores[cell])),
        )
        for cell in grids
    ]


def _read_predictions(results_dir: Path, cell: str, splits: list[str]) -> dict[str, SplitOutputs]:
    """The cell's predictions files, where `bench.results.store.write_record` puts them."""
    outputs = {}
    for split in splits:
        path = predictions_file(cell_dir(results_dir, cell), split)
        if not path.is_file():
            continue
        try:
            with path.open(encoding="utf-8") as lines:
                outputs[split] = _split_outputs([json.loads(line) for line in lines])
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise UserError(
                f"{path} is malformed ({type(error).__name__}: {error}); rerun the cell with "
                "--force, or remove it from the results directory"
            ) from None
    return outputs


def _split_outputs(rows: list[dict[str, Any]]) -> SplitOutputs:
    return SplitOutputs(
        sources=[row["source"] for row in rows],
        predictions=[row["prediction"] for row in rows],
        references=[list(row["references"]) for row in rows],
    )


# A bundle is JSON text, which gzip shrinks 5-15x (the committed baseline: 7.4x). Reading stops
# once the text outgrows its file by far more: a small file that expands to gigabytes is refused.
MAX_EXPANSION = 100
EXPANSION_SLACK = 64 * 2**20  # bytes any bundle may expand to, whatever its ratio


def _read_bundle(path: Path) -> list[CellResults]:
    limit = EXPANSION_SLACK + MAX_EXPANSION * path.stat().st_size
    try:
        chunks, size = [], 0
        with gzip.open(path, "rb") as f:
            while size <= limit and (chunk := f.read(1 << 20)):
                chunks.append(chunk)
                size += len(chunk)
        if size > limit:
            raise UserError(
                f"{path} expands past {limit:,} bytes ({MAX_EXPANSION}x its size and more): not a "
                "bundle bench wrote; export it again"
            )
        bundle = json.loads(b"".join(chunks).decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError):
        bundle = None
    if not isinstance(bundle, dict) or not str(bundle.get("format", "")).startswith(
        "bench-bundle/"
    ):
        raise UserError(
            f"{path} is not a bundle (gzip JSON written by `python -m bench export --format "
            "bundle`) nor a results directory"
        )
    if bundle["format"] != FORMAT:
        raise UserError(f"{path} is a {bundle['format']} bundle; this version reads {FORMAT}")
    try:
        return [
            CellResults(
                id=cell["id"],
                config=cell["config"],
                grids=cell["grids"],
                provenance=cell["provenance"],
                params=cell["params"],
                scores=_bundle_scores(cell["scores"]),
                outputs={s: _split_outputs(rows) for s, rows in cell["predictions"].items()},
            )
            for cell in bundle["cells"]
        ]
    except (KeyError, TypeError, AttributeError) as error:
        raise UserError(
            f"{path} is a damaged bundle ({type(error).__name__}: {error}); export it again"
        ) from None


def _bundle_scores(rows: list[dict[str, Any]]) -> dict[str, dict[str, StoredScore]]:
    scores: dict[str, dict[str, StoredScore]] = {}
    for row in rows:
        scores.setdefault(row["split"], {})[row["metric"]] = StoredScore(
            row["value"], int(row["ood"]), row["n"], row["low"], row["high"]
        )
    return scores


def write_bundle(results_dir: Path, out: Path, grid: str | None = None) -> int:
    """Bundle a results directory's finished cells (of one grid, if given); returns the count.

    A cell without its prediction files cannot be compared later, so it stops the export.
    """
    cells = _read_results_dir(results_dir, grid)
    if not cells:
        raise UserError(
            f"no finished cells in {results_dir}" + (f" for grid {grid!r}" if grid else "")
        )
    payload = {
        "format": FORMAT,
        "grid": grid,
        "cells": [_bundle_cell(cell, results_dir) for cell in cells],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    # No file name or time in the gzip header, and sorted keys: the same results give the same
    # bytes wherever they are written (no spurious git diff of a baseline).
    with out.open("wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as f:
        f.write(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    return len(cells)


def _bundle_cell(cell: CellResults, results_dir: Path) -> dict[str, Any]:
    where = f"cell {cell.id} ({cell.config['task']} / {cell.describe()})"
    missing = sorted(set(cell.scores) - set(cell.outputs))
    if missing:
        raise UserError(
            f"{where} has no predictions for {', '.join(missing)} under "
            f"{results_dir / 'cells' / cell.id}; rerun it with --force"
        )
    for split, metrics in cell.scores.items():
        scored, written = next(iter(metrics.values())).n, len(cell.outputs[split].predictions)
        if written != scored:
            raise UserError(
                f"{where}: {split} predictions has {written} lines but the cell scored {scored}; "
                "rerun it with --force"
            )
    return cell_entry(cell)


def cell_entry(cell: CellResults) -> dict[str, Any]:
    """One cell as a bundle holds it."""
    return {
        "id": cell.id,
        "config": cell.config,
        "grids": cell.grids,
        "provenance": cell.provenance,
        "params": cell.params,
        "scores": [
            {"split": split, "metric": metric, **vars(score)}
            for split, metrics in cell.scores.items()
            for metric, score in metrics.items()
        ],
        "predictions": {
            split: [
                {"source": s, "prediction": p, "references": r}
                for s, p, r in zip(out.sources, out.predictions, out.references, strict=True)
            ]
            for split, out in cell.outputs.items()
        },
    }
