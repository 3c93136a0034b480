"""DART v1.1.1 (Nan et al., 2021): open-domain triple sets to text.

Files under `DIR/dart/`: `dart-v1.1.1-full-{train,dev,test}.json` or `.xml` (XML preferred for
test: one input per entry, 5,097 inputs with 12,552 references, in the order of the official
reference files `dart_reference/all-delex-reference*.lex`), or the hub dataset `dart`.
Train and dev entries with the same triple set are one input whose references are all their
annotations, in first-seen order, as the paper's `read_triples_files` does. The test JSON (hub:
6,959 rows) merges consecutive entries with the same triple set; that it then equals the XML's
5,097 inputs is not verified here (no test JSON is available offline). Linearization as the
paper's: `s : p : o | s : p : o`, relation names lowercased.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from bench.data.files import data_root, field, parse_xml, read_json, require
from bench.data.hub import hub_rows
from bench.errors import UserError
from bench.spec.registry import TASKS
from bench.spec.task import DEV, TRAIN, EvalSplit, Example, Task
from bench.tasks.webnlg import split_triple

Triple = tuple[str, str, str]


def linearize(triples: Iterable[Triple]) -> str:
    return " | ".join(f"{s} : {p.lower()} : {o}" for s, p, o in triples)


def group(entries: Iterable[tuple[list[Triple], list[str]]]) -> list[Example]:
    """(triples, references) entries -> one Example per distinct linearized triple set."""
    grouped: dict[str, list[str]] = {}
    for triples, refs in entries:
        grouped.setdefault(linearize(triples), []).extend(refs)
    return [Example(source, tuple(refs)) for source, refs in grouped.items() if refs]


def group_adjacent(entries: Iterable[tuple[list[Triple], list[str]]]) -> list[Example]:
    """Merge runs of consecutive entries with the same triple set: the test JSON lists one entry
    per annotation source, while the official test XML and reference files keep triple sets that
    recur later as separate inputs (5,097 inputs, 4,159 distinct triple sets)."""
    examples: list[Example] = []
    for triples, refs in entries:
        source = linearize(triples)
        if examples and examples[-1].source == source:
            examples[-1] = Example(source, (*examples[-1].references, *refs))
        else:
            examples.append(Example(source, tuple(refs)))
    return [ex for ex in examples if ex.references]


def entries_from_json(records: Any, where: str) -> list[tuple[list[Triple], list[str]]]:
    if not isinstance(records, list):
        raise UserError(f"{where}: expected a JSON list of DART entries")
    entries = []
    for i, record in enumerate(records):
        here = f"{where}, entry {i}"
        triples = [_triple(t, here) for t in field(record, "tripleset", here)]
        refs = [field(a, "text", here) for a in field(record, "annotations", here)]
        entries.append((triples, refs))
    return entries


def entries_from_xml(path: Path) -> list[tuple[list[Triple], list[str]]]:
    entries = []
    for number, entry in enumerate(parse_xml(path).iter("entry"), 1):
        where = f"{path}, entry {entry.get('eid') or number}"
        mtriples = entry.findall("modifiedtripleset/mtriple")
        if not mtriples:
            raise UserError(f"{where}: no <modifiedtripleset><mtriple>; is this DART XML?")
        triples = [split_triple(t.text or "", where) for t in mtriples]
        entries.append((triples, [(lx.text or "").strip() for lx in entry.findall("lex")]))
    return entries


def entries_from_hub(
    rows: Iterable[dict[str, Any]], where: str
) -> list[tuple[list[Triple], list[str]]]:
    entries = []
    for i, row in enumerate(rows):
        here = f"{where}, row {i}"
        triples = [_triple(t, here) for t in field(row, "tripleset", here)]
        entries.append((triples, list(field(field(row, "annotations", here), "text", here))))
    return entries


def _triple(value: Any, where: str) -> Triple:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise UserError(f"{where}: triple {value!r} is not [subject, property, object]")
    return str(value[0]), str(value[1]), str(value[2])


@TASKS.register("dart")
class DART(Task):
    version = "1"
    description = "DART v1.1.1 open-domain triples -> text; test 5,097 inputs / 12,552 references"
    eval_splits = (EvalSplit("test", ood=False),)
    suite = "dart"
    candidates: ClassVar[dict[str, tuple[str, ...]]] = {
        TRAIN: ("dart/dart-v1.1.1-full-train.json", "dart/dart-v1.1.1-full-train.xml"),
        DEV: ("dart/dart-v1.1.1-full-dev.json", "dart/dart-v1.1.1-full-dev.xml"),
        "test": ("dart/dart-v1.1.1-full-test.xml", "dart/dart-v1.1.1-full-test.json"),
    }
    hub_splits: ClassVar[dict[str, str]] = {TRAIN: "train", DEV: "validation", "test": "test"}

    def load(self, split: str, data_dir: Path | None) -> list[Example]:
        self.check_split(split)
        if not self._from_files(data_dir):
            hub_split = self.hub_splits[split]
            entries = entries_from_hub(
                hub_rows(self.name, "dart", hub_split), f"hub dart/{hub_split}"
            )
            return group_adjacent(entries) if split == "test" else group(entries)
        return list(_load_file(self._file(split, data_dir), split == "test"))

    def _from_files(self, data_dir: Path | None) -> bool:
        return data_dir is not None or any(
            (data_root(None) / c).exists() for c in self.candidates["test"]
        )

    def _file(self, split: str, data_dir: Path | None) -> Path:
        for candidate in self.candidates[split]:
            if (data_root(data_dir) / candidate).exists():
                return data_root(data_dir) / candidate
        return require(data_dir, self.candidates[split][0], self.name)

    def data_files(self, data_dir: Path | None) -> list[Path]:
        if not self._from_files(data_dir):
            return []
        root = data_root(data_dir)
        return [
            root / c for names in self.candidates.values() for c in names if (root / c).exists()
        ]

    def recipe(self) -> dict[str, object]:
        return {
            "grouping": "train/dev: by triple set, first-seen order; test: runs of equal sets",
            "linearization": "s : p.lower() : o | ...",
            "hub": "dart",
        }


@cache
def _load_file(path: Path, test: bool) -> tuple[Example, ...]:
    if path.suffix == ".xml":
        entries = entries_from_xml(path)
        if test:  # the official test XML is already grouped: one input per entry
            return tuple(Example(linearize(t), tuple(refs)) for t, refs in entries)
        return tuple(group(entries))
    entries = entries_from_json(read_json(path), str(path))
    return tuple(group_adjacent(entries) if test else group(entries))
