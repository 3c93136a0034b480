"""E2E NLG (Novikova et al., 2017): restaurant meaning representations to text.

Official CSVs (`mr,ref`, one row per reference) are grouped into inputs by identical MR in file
order, as the official scorer and the paper's code do: test = 630 inputs with 4,693 references.
Sources: `--data-dir DIR` with `DIR/e2e/{trainset,devset,testset_w_refs}.csv` (the e2e-dataset
release), or the hub dataset `e2e_nlg` (same rows). `e2e-cleaned` reads the e2e-cleaning CSVs
(`DIR/e2e/cleaned/{train-fixed.no-ol,devel-fixed.no-ol,test-fixed}.csv`, hub `e2e_nlg_cleaned`).

Linearization, as in the paper's data (`src1_*.txt`): `name : X | Type : Y | area : Z`, slots
in MR order, with the slot names `eatType` -> `Type`, `priceRange` -> `price`, `familyFriendly`
-> `family friendly`; the others keep their names. Values keep their original form (the paper's
files also space-tokenize them, `£20-25` -> `£ 20 - 25`; otherwise the sources are identical).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import ClassVar

from bench.data.files import data_root, read_csv, require
from bench.data.hub import hub_rows
from bench.errors import UserError
from bench.spec.registry import TASKS
from bench.spec.task import DEV, TRAIN, EvalSplit, Example, Task

SLOT_NAMES = {"eatType": "Type", "priceRange": "price", "familyFriendly": "family friendly"}
_SLOT = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")


def linearize_mr(mr: str, where: str = "MR") -> str:
    """`name[X], eatType[Y]` -> `name : X | Type : Y` (the paper's input format)."""
    slots = []
    position = 0
    while position < len(mr):
        match = _SLOT.match(mr, position)
        if match is None:
            raise UserError(f"{where}: malformed MR {mr!r}; expected `slot[value], ...`")
        slots.append(f"{SLOT_NAMES.get(match[1], match[1])} : {match[2]}")
        position = match.end()
    if not slots:
        raise UserError(f"{where}: empty MR")
    return " | ".join(slots)


def group_references(pairs: Iterable[tuple[str, str, str]]) -> list[Example]:
    """(MR, reference, where) rows -> one Example per distinct MR, first-seen order."""
    grouped: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    for mr, ref, where in pairs:
        if mr not in grouped:
            grouped[mr] = []
            sources[mr] = linearize_mr(mr, where)
        grouped[mr].append(ref)
    return [Example(sources[mr], tuple(refs)) for mr, refs in grouped.items()]


@TASKS.register("e2e")
class E2E(Task):
    version = "1"
    description = "E2E NLG restaurant MRs -> text; test 630 inputs / 4,693 references"
    eval_splits = (EvalSplit("test", ood=False),)
    suite = "e2e"
    files: ClassVar[dict[str, str]] = {
        TRAIN: "e2e/trainset.csv",
        DEV: "e2e/devset.csv",
        "test": "e2e/testset_w_refs.csv",
    }
    hub_id: ClassVar[str] = "e2e_nlg"
    hub_splits: ClassVar[dict[str, str]] = {TRAIN: "train", DEV: "validation", "test": "test"}

    def load(self, split: str, data_dir: Path | None) -> list[Example]:
        self.check_split(split)
        if self._from_files(data_dir):
            return list(_load_csv(require(data_dir, self.files[split], self.name)))
        rows = hub_rows(self.name, self.hub_id, self.hub_splits[split])
        return examples_from_hub(rows, f"hub {self.hub_id}/{self.hub_splits[split]}")

    def _from_files(self, data_dir: Path | None) -> bool:
        """Files when a data dir is given or the default one holds them; the hub otherwise."""
        return data_dir is not None or (data_root(None) / self.files["test"]).exists()

    def data_files(self, data_dir: Path | None) -> list[Path]:
        if not self._from_files(data_dir):
            return []
        return [p for p in (data_root(data_dir) / f for f in self.files.values()) if p.exists()]

    def recipe(self) -> dict[str, object]:
        return {
            "grouping": "references grouped by identical MR, file order",
            "linearization": "slot : value | ...",
            "hub": self.hub_id,
        }


@TASKS.register("e2e-cleaned")
class E2ECleaned(E2E):
    description = "E2E with the e2e-cleaning fixed MRs (Dušek et al., 2019); test 1,847 MRs"
    files: ClassVar[dict[str, str]] = {
        TRAIN: "e2e/cleaned/train-fixed.no-ol.csv",
        DEV: "e2e/cleaned/devel-fixed.no-ol.csv",
        "test": "e2e/cleaned/test-fixed.csv",
    }
    hub_id: ClassVar[str] = "e2e_nlg_cleaned"


@cache
def _load_csv(path: Path) -> tuple[Example, ...]:
    rows = (
        (row["mr"], row["ref"], f"{path}, line {n}") for n, row in read_csv(path, ("mr", "ref"))
    )
    return tuple(group_references(rows))


def examples_from_hub(rows: Iterable[dict[str, str]], where: str) -> list[Example]:
    """Hub rows (`meaning_representation`, `human_reference`; one per reference) -> Examples."""
    pairs = []
    for i, row in enumerate(rows):
        if "meaning_representation" not in row or "human_reference" not in row:
            raise UserError(
                f"{where}, row {i}: expected fields meaning_representation, human_reference"
            )
        pairs.append((row["meaning_representation"], row["human_reference"], f"{where}, row {i}"))
    return group_references(pairs)
