"""Parity with the official scorers: the metric vectors' system outputs, scored by our suites,
give the numbers that e2e-metrics and the DART repo's WebNLG/DART scripts printed.

References are read straight from the official files with tiny local parsers (not the task
loaders), so these tests pin the metrics alone. Tolerances are the issue's: E2E BLEU, METEOR and
ROUGE-L 0.002, NIST 0.02, CIDEr 0.01; WebNLG and DART BLEU 0.2 points, METEOR and TER 0.002.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from bench.metrics import text
from bench.metrics.suites import SUITES, Suite
from tests.shared_data import metric_vectors_dir, shared_data_dir

pytestmark = pytest.mark.slow  # JVMs and full test sets

E2E_TOLERANCE = {"bleu": 0.002, "nist": 0.02, "meteor": 0.002, "rouge_l": 0.002, "cider": 0.01}
OFFICIAL_E2E_NAME = {
    "bleu": "BLEU",
    "nist": "NIST",
    "meteor": "METEOR",
    "rouge_l": "ROUGE_L",
    "cider": "CIDEr",
}
TOLERANCE = {"bleu": 0.2, "meteor": 0.002, "ter": 0.002}
UNSEEN = {"Artist", "Athlete", "CelestialBody", "MeanOfTransportation", "Politician"}


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def aggregate(suite: Suite, stats: dict, rows: np.ndarray | slice = slice(None)) -> dict:
    return {
        name: suite.by_name[name].metric.aggregate(s[rows])
        for name, s in stats.items()
        if isinstance(s, np.ndarray)
    }


# --- E2E --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def e2e_references() -> list[list[str]]:
    """testset_w_refs.csv grouped by identical MR, in file order."""
    with (shared_data_dir() / "e2e" / "testset_w_refs.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["mr"], []).append(row["ref"])
    return list(groups.values())


@pytest.mark.parametrize("system", ["tgen", "slug", "chen"])
def test_e2e_suite_reproduces_the_official_scorer(system, e2e_references):
    vectors = metric_vectors_dir() / "e2e"
    official = json.loads((vectors / "official.json").read_text())[system]
    hypotheses = lines(vectors / f"{system}.txt")
    assert len(hypotheses) == len(e2e_references) == 630
    suite = SUITES.get("e2e")
    ours = aggregate(suite, suite.stats(hypotheses, e2e_references))
    assert set(ours) == set(E2E_TOLERANCE)
    for name, tolerance in E2E_TOLERANCE.items():
        printed = official["official_4dp"][OFFICIAL_E2E_NAME[name]]
        assert ours[name] == pytest.approx(printed, abs=tolerance), name
    # Closer than the tolerances: the full-precision values of the official code.
    full = official["full_precision"]
    assert ours["bleu"] == pytest.approx(full["BLEU_pymteval"], abs=1e-9)
    assert ours["nist"] == pytest.approx(full["NIST_pymteval_perl_length_penalty"], abs=1e-5)
    for name in ("meteor", "rouge_l", "cider"):
        assert ours[name] == pytest.approx(full[OFFICIAL_E2E_NAME[name]], abs=1e-6), name


# --- WebNLG 2017 ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def webnlg_entries() -> list[tuple[str, list[str]]]:
    """(category, lex texts) of each test entry, in natural order of the entry ids."""
    path = shared_data_dir() / "webnlg" / "webnlg_challenge_2017" / "test" / "testdata_with_lex.xml"
    entries = ET.parse(path).getroot().iter("entry")
    ordered = sorted(entries, key=lambda e: int(e.get("eid").removeprefix("Id")))
    return [(e.get("category"), [lex.text or "" for lex in e.iter("lex")]) for e in ordered]


def test_webnlg_reference_preprocessing_regenerates_the_official_files(webnlg_entries):
    folder = shared_data_dir() / "webnlg" / "references"
    for j in range(3):
        official = lines(folder / f"gold-all-cat-reference{j}.lex")
        ours = [text.webnlg_reference(x[j]) if j < len(x) else "" for _, x in webnlg_entries]
        assert ours == official


def test_webnlg_suite_reproduces_the_official_scores_seen_unseen_all(webnlg_entries):
    vectors = metric_vectors_dir() / "webnlg"
    official = json.loads((vectors / "official.json").read_text())["scores"]
    hypotheses = lines(vectors / "bart-large_webnlg-all.txt")
    assert len(hypotheses) == len(webnlg_entries) == 1862
    suite = SUITES.get("webnlg")
    stats = suite.stats(hypotheses, [lexs for _, lexs in webnlg_entries])
    unseen = np.array([category in UNSEEN for category, _ in webnlg_entries])
    for part, rows in (("seen", ~unseen), ("unseen", unseen), ("all", slice(None))):
        ours = aggregate(suite, stats, rows)
        for name, tolerance in TOLERANCE.items():
            assert ours[name] == pytest.approx(official[part][name.upper()], abs=tolerance), (
                part,
                name,
            )


# --- DART -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dart_references() -> list[list[str]]:
    """The three official reference files; a blank line means no such reference."""
    folder = shared_data_dir() / "dart" / "dart_reference"
    files = [lines(folder / f"all-delex-reference{j}.lex") for j in range(3)]
    return [[r for r in refs if r.strip()] for refs in zip(*files, strict=True)]


def test_dart_suite_reproduces_the_official_scores(dart_references):
    vectors = metric_vectors_dir() / "dart"
    official = json.loads((vectors / "official.json").read_text())["scores"]
    hypotheses = lines(vectors / "bart-large_dart.txt")
    assert len(hypotheses) == len(dart_references) == 5097
    suite = SUITES.get("dart")
    stats = suite.stats(hypotheses, dart_references)
    ours = aggregate(suite, stats)
    for name, tolerance in TOLERANCE.items():
        assert ours[name] == pytest.approx(official[name.upper()], abs=tolerance), name
    for extra in ("bertscore", "bleurt"):  # optional: absent models are reported, never 0
        assert extra in ours or re.search("optional", str(stats[extra]))


def test_dart_normalization_maps_raw_references_to_the_official_files(dart_references):
    """Raw XML references become the official reference lines; the official lines and the
    normalized outputs stay as they are."""
    xml = shared_data_dir() / "dart" / "dart-v1.1.1-full-test.xml"
    raw = [[lex.text or "" for lex in e.iter("lex")] for e in ET.parse(xml).getroot().iter("entry")]
    normalized = [[text.dart_text(r) for r in refs[:3]] for refs in raw]
    assert [[r for r in refs if r] for refs in normalized] == dart_references
    hypotheses = lines(metric_vectors_dir() / "dart" / "bart-large_dart.txt")
    for line in [*hypotheses, *(r for refs in dart_references for r in refs)]:
        assert text.dart_text(line) == line.strip()
