"""WebNLG challenge 2017 (Gardent et al., 2017): DBpedia triples to text, seen/unseen categories.

Files: `DIR/webnlg/webnlg_challenge_2017/{train,dev}/*triples/*.xml` and
`.../test/testdata_with_lex.xml` (the copy the paper used), or the hub dataset `web_nlg`
config `webnlg_challenge_2017` filtered to `test_category == "testdata_with_lex"` (not GEM/web_nlg,
which is WebNLG 2020). Training uses the `comment="good"` lexicalisations, as the paper's code does;
test inputs keep all their references and follow the entry ids in natural order (Id1, Id2, ..., as
the official reference files do). `test_seen` holds the 10 training categories (971 inputs),
`test_unseen` the 5 categories never trained on (891, out of distribution), `test` all 1,862.

Linearization, as the paper's training data: ` | s : p : o` per modified triple, entities keep
their underscores (`| Aarhus : leaderName : Jacob_Bundsgaard`; the engine prefixes a space).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from bench.data.files import data_root, natural_key, parse_xml, require
from bench.data.hub import hub_rows
from bench.errors import UserError
from bench.spec.registry import TASKS
from bench.spec.task import DEV, TRAIN, EvalSplit, Example, SplitRows, Task

SEEN = frozenset(
    {
        "Airport",
        "Astronaut",
        "Building",
        "City",
        "ComicsCharacter",
        "Food",
        "Monument",
        "SportsTeam",
        "University",
        "WrittenWork",
    }
)
UNSEEN = frozenset({"Artist", "Athlete", "CelestialBody", "MeanOfTransportation", "Politician"})
ROOT = "webnlg/webnlg_challenge_2017"
TEST_FILE = f"{ROOT}/test/testdata_with_lex.xml"
TEST_CATEGORIES = {"test_seen": SEEN, "test_unseen": UNSEEN, "test": SEEN | UNSEEN}


def linearize(triples: Iterable[tuple[str, str, str]]) -> str:
    return "".join(f" | {s} : {p} : {o}" for s, p, o in triples).lstrip()


def split_triple(text: str, where: str) -> tuple[str, str, str]:
    parts = [part.strip() for part in text.split(" | ")]
    if len(parts) != 3:
        raise UserError(f"{where}: triple {text!r} is not `subject | property | object`")
    return parts[0], parts[1], parts[2]


def _entry(
    category: str, eid: str, triples: list[tuple[str, str, str]], lex: list[tuple[str, str]]
) -> dict[str, Any]:
    return {"category": category, "eid": eid, "triples": triples, "lex": lex}


def entries_from_xml(path: Path) -> list[dict[str, Any]]:
    entries = []
    for number, entry in enumerate(parse_xml(path).iter("entry"), 1):
        where = f"{path}, entry {entry.get('eid') or number}"
        category = entry.get("category")
        if not category:
            raise UserError(f"{where}: missing attribute 'category'")
        mtriples = entry.findall("modifiedtripleset/mtriple")
        if not mtriples:
            raise UserError(f"{where}: no <modifiedtripleset><mtriple>; is this WebNLG 2017 XML?")
        triples = [split_triple(t.text or "", where) for t in mtriples]
        lex = [(lx.get("comment", ""), (lx.text or "").strip()) for lx in entry.findall("lex")]
        entries.append(_entry(category, entry.get("eid", f"Id{number}"), triples, lex))
    return entries


def entries_from_hub(rows: Iterable[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Hub rows of `web_nlg`/`webnlg_challenge_2017` (test: only `testdata_with_lex`)."""
    entries = []
    for i, row in enumerate(rows):
        here = f"{where}, row {i}"
        for key in ("category", "eid", "modified_triple_sets", "lex"):
            if key not in row:
                raise UserError(f"{here}: missing field {key!r}; is this web_nlg 2017?")
        if row.get("test_category", "testdata_with_lex") != "testdata_with_lex":
            continue
        (mtriples,) = row["modified_triple_sets"]["mtriple_set"][:1] or [[]]
        triples = [split_triple(t, here) for t in mtriples]
        lex = list(zip(row["lex"]["comment"], row["lex"]["text"], strict=True))
        entries.append(_entry(row["category"], row["eid"], triples, lex))
    return entries


def to_examples(entries: list[dict[str, Any]], good_only: bool) -> list[Example]:
    examples = []
    for entry in entries:
        refs = tuple(text for comment, text in entry["lex"] if comment == "good" or not good_only)
        if refs:
            examples.append(Example(linearize(entry["triples"]), refs))
    return examples


def _test_inputs(entries: list[dict[str, Any]]) -> list[tuple[str, Example]]:
    """(category, input) of every test entry with a reference, in entry order: one list from
    which both the splits and their rows in `test` are cut, so the two always agree."""
    return [(e["category"], ex) for e in entries for ex in to_examples([e], good_only=False)]


@TASKS.register("webnlg")
class WebNLG(Task):
    version = "1"
    description = (
        "WebNLG 2017 triples -> text; test_seen 971 (10 training categories), test_unseen 891 "
        "(5 unseen categories, OOD), test 1,862"
    )
    eval_splits = (
        EvalSplit("test_seen", ood=False),
        EvalSplit("test_unseen", ood=True),
        EvalSplit("test", ood=False, mixed=True),
    )
    suite = "webnlg"
    hub_id: ClassVar[str] = "web_nlg"
    hub_config: ClassVar[str] = "webnlg_challenge_2017"

    def load(self, split: str, data_dir: Path | None) -> list[Example]:
        self.check_split(split)
        entries = self._entries(
            TRAIN if split == TRAIN else DEV if split == DEV else "test", data_dir
        )
        if split in (TRAIN, DEV):
            return to_examples(entries, good_only=True)
        wanted = TEST_CATEGORIES[split]
        return [ex for category, ex in _test_inputs(entries) if category in wanted]

    def eval_split_rows(self, data_dir: Path | None) -> dict[str, SplitRows]:
        """Seen and unseen are the rows of their categories in `test` (the official file order)."""
        categories = [category for category, _ in _test_inputs(self._entries("test", data_dir))]
        return {
            split: SplitRows("test", tuple(i for i, c in enumerate(categories) if c in wanted))
            for split, wanted in TEST_CATEGORIES.items()
        }

    def _entries(self, part: str, data_dir: Path | None) -> list[dict[str, Any]]:
        if self._from_files(data_dir):
            paths = tuple(self._files(part, data_dir))
            entries = [e for path in paths for e in _xml_entries(path)]
        else:
            hub_split = {TRAIN: "train", DEV: "dev", "test": "test"}[part]
            rows = hub_rows(self.name, self.hub_id, hub_split, self.hub_config)
            entries = entries_from_hub(rows, f"hub {self.hub_id}/{hub_split}")
        for entry in entries:
            if entry["category"] not in SEEN | UNSEEN:
                raise UserError(
                    f"{self.name} {part}: entry {entry['eid']} has unknown category "
                    f"{entry['category']!r}; valid: {', '.join(sorted(SEEN | UNSEEN))}"
                )
        if part == "test":
            entries.sort(key=lambda e: natural_key(e["eid"]))
        return entries

    def _from_files(self, data_dir: Path | None) -> bool:
        return data_dir is not None or (data_root(None) / TEST_FILE).exists()

    def _files(self, part: str, data_dir: Path | None) -> list[Path]:
        if part == "test":
            return [require(data_dir, TEST_FILE, self.name)]
        folder = require(data_dir, f"{ROOT}/{part}", self.name)
        files = sorted(folder.glob("*triples/*.xml"), key=lambda p: natural_key(str(p)))
        if not files:
            raise UserError(
                f"task {self.name!r}: no {folder}/*triples/*.xml files; pass --data-dir DIR with "
                "the WebNLG 2017 challenge release"
            )
        return files

    def data_files(self, data_dir: Path | None) -> list[Path]:
        if not self._from_files(data_dir):
            return []
        return [p for part in (TRAIN, DEV, "test") for p in self._files(part, data_dir)]

    def recipe(self) -> dict[str, object]:
        return {
            "train": 'lexicalisations with comment="good"',
            "test_order": "entry ids in natural order",
            "seen": sorted(SEEN),
            "unseen": sorted(UNSEEN),
            "hub": f"{self.hub_id}/{self.hub_config}, test_category == testdata_with_lex",
        }


@cache
def _xml_entries(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(entries_from_xml(path))
