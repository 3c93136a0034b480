"""A finished cell's record made up in microseconds: what a test's `run_cell` stand-in returns,
or what it writes into a store, where no model need train."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bench.engine.record import CellRecord, ParamCounts, Prediction, Score
from bench.spec.settings import Cell


def fake_record(
    cell: Cell,
    *,
    splits: Sequence[str] = ("test",),
    n: int = 1,
    bleu: float = 1.0,
    stored: bytes = b"",
    **fields,
) -> CellRecord:
    """`cell`'s record with `n` predictions and a BLEU of `bleu` on each split (none of them OOD),
    counts of 1 and nothing else; `fields` replace any of the record's fields."""
    outputs = [Prediction(f"source {i}", "an output", ("a reference",)) for i in range(n)]
    record = CellRecord(
        cell=cell,
        scores=[Score(split, False, "bleu", bleu, n) for split in splits],
        params=ParamCounts(1, 1, 1, 1),
        losses={},
        timings={},
        provenance={},
        predictions={split: list(outputs) for split in splits},
        stored=stored,
    )
    return dataclasses.replace(record, **fields)
