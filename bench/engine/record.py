"""The result of one cell, as one value: what `bench.engine.cell.run_cell` returns and the store
keeps.

A `CellRecord` holds everything a finished cell produced (scores, parameter counts, losses,
timings, provenance, predictions and the stored weights, already serialized), so that the
function that computes it can run anywhere (this process, a worker, another machine) and one
place, `bench.results.store.write_record`, writes it to the cell folder and the database.
Torch-free: the weights travel as safetensors bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.spec.settings import Cell

STORED = "stored.safetensors"  # the stored weights' file in a cell folder


@dataclass(frozen=True)
class Score:
    split: str
    ood: bool
    metric: str
    value: float
    n: int
    low: float | None = None
    high: float | None = None
    mixed: bool = False  # the split mixes ID and OOD inputs (`EvalSplit.mixed`)

    @property
    def code(self) -> int:
        """As stored: 0 ID, 1 OOD, 2 all (`bench.spec.task.SPLIT_TAGS`)."""
        return 2 if self.mixed else int(self.ood)


@dataclass(frozen=True)
class ParamCounts:
    trained: int
    stored: int
    total: int
    stored_bytes: int

    @property
    def trained_pct(self) -> float:
        return 100.0 * self.trained / self.total

    @property
    def stored_pct(self) -> float:
        return 100.0 * self.stored / self.total


@dataclass(frozen=True)
class Prediction:
    """One test input's output; every split's JSONL file has one per input, in input order."""

    source: str
    prediction: str
    references: tuple[str, ...]


@dataclass
class CellRecord:
    cell: Cell
    scores: list[Score]
    params: ParamCounts
    losses: dict[str, list[tuple[int, float]]]  # "train": (step, loss), "dev": (epoch, loss)
    timings: dict[str, float]  # seconds per phase
    provenance: dict[str, Any]  # versions, git sha, hardware, checkpoint, data hashes, ...
    predictions: dict[str, list[Prediction]]  # split -> one per input
    stored: bytes  # the method's stored weights, a safetensors file's bytes
    notes: list[str] = field(default_factory=list)  # for the user: e.g. a metric unavailable
    # split -> metric -> why it has no score (no Java, a crashed JVM): stored with the cell, so
    # reports say why a column is blank instead of leaving it silently empty
    missing: dict[str, dict[str, str]] = field(default_factory=dict)
