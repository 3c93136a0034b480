"""The papers' published numbers (`data/paper_results.yaml`), as reference rows for tables whose
columns are a paper setting (same task, split and metric)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DATA = Path(__file__).parent / "data" / "paper_results.yaml"


@dataclass(frozen=True)
class PaperRow:
    label: str
    model: str
    source: str
    scores: dict[tuple[str, str, str], float]  # (task, split, metric) -> published value


@cache
def paper_rows() -> tuple[PaperRow, ...]:
    rows = []
    for table in yaml.safe_load(DATA.read_text()):
        for row in table["rows"]:
            scores = {
                (*key.split("/", 1), metric): float(value)
                for key, metrics in row["scores"].items()
                for metric, value in metrics.items()
            }
            rows.append(PaperRow(row["label"], table["model"], table["source"], scores))
    return tuple(rows)


def matching_rows(keys: list[tuple[str, str, str]], models: set[str]) -> list[PaperRow]:
    """Rows with a number for some of `keys`. Of the models that published them, those the grid
    ran (a `random:` architecture counts as its hub model); otherwise the paper's main model
    (the first published), so a mini or random grid still shows what it is compared against."""
    wanted = set(keys)
    candidates = [r for r in paper_rows() if wanted & set(r.scores)]
    if not candidates:
        return []
    ran = {m.removeprefix("random:") for m in models}
    ran |= {f"facebook/{m}" for m in ran}
    chosen = [r for r in candidates if r.model in ran]
    if chosen:
        return chosen
    main = candidates[0].model
    return [r for r in candidates if r.model == main]
