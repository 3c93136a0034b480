"""Parity with the official scorers: the metric vectors' system outputs, scored by our suites,
give the numbers that e2e-metrics and the DART repo's WebNLG/DART scripts printed.

References are read straight from the official files with tiny local parsers (not the task
loaders), so these tests pin the metrics alone. Tolerances sit a little above the largest
difference measured (2-core x86-64 AMD EPYC): numbers printed to 4 or 2 decimals are matched to
2x their rounding (largest differences 4.7e-5 and 0.0048 points), full-precision ones to 1e-12
(largest 1.8e-15), TER to 3e-4 (WebNLG, largest 1.0e-4) and 5e-4 (DART, largest 2.0e-4); and
multi-bleu's whole printed line (precisions, BP, ratio, lengths) is reproduced exactly.
"""

from __future__ import annotations

import csv
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from bench.metrics import text
from bench.metrics.multibleu import MAX_N
from bench.metrics.suites import SUITES, Suite
from tests.shared_data import metric_vectors_dir, shared_data_dir

pytestmark = pytest.mark.slow  # JVMs and full test sets

E2E_TOLERANCE = {"bleu": 1e-4, "nist": 1e-4, "meteor": 1e-4, "rouge_l": 1e-4, "cider": 1e-4}
FULL_PRECISION = 1e-12
OFFICIAL_E2E_NAME = {
    "bleu": "BLEU",
    "nist": "NIST",
    "meteor": "METEOR",
    "rouge_l": "ROUGE_L",
    "cider": "CIDEr",
}
WEBNLG_TOLERANCE = {"bleu": 0.01, "meteor": 1e-12, "ter": 3e-4}
DART_TOLERANCE = {"bleu": 0.01, "meteor": 1e-12, "ter": 5e-4}
UNSEEN = {"Artist", "Athlete", "CelestialBody", "MeanOfTransportation", "Politician"}


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def aggregate(suite: Suite, stats: dict, rows: np.ndarray | slice = slice(None)) -> dict:
    return {
        name: suite.by_name[name].metric.aggregate(s[rows])
        for name, s in stats.items()
        if isinstance(s, np.ndarray)
    }


def multi_bleu_line(totals: np.ndarray, bleu: float) -> str:
    """The line multi-bleu.perl prints for these MultiBleu column sums, with its rounding."""
    hyp_len, ref_len = totals[0], totals[1]
    precisions = "/".join(f"{p:.1f}" for p in 100 * totals[2 : 2 + MAX_N] / totals[2 + MAX_N :])
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return (
        f"BLEU = {bleu:.2f}, {precisions} (BP={brevity:.3f}, ratio={hyp_len / ref_len:.3f}, "
        f"hyp_len={hyp_len:.0f}, ref_len={ref_len:.0f})"
    )


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
    assert ours["bleu"] == pytest.approx(full["BLEU_pymteval"], abs=FULL_PRECISION)
    nist = full["NIST_pymteval_perl_length_penalty"]
    assert ours["nist"] == pytest.approx(nist, abs=FULL_PRECISION)
    for name in ("meteor", "rouge_l", "cider"):
        assert ours[name] == pytest.approx(full[OFFICIAL_E2E_NAME[name]], abs=FULL_PRECISION), name


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
    official = json.loads((vectors / "official.json").read_text())
    hypotheses = lines(vectors / "bart-large_webnlg-all.txt")
    assert len(hypotheses) == len(webnlg_entries) == 1862
    suite = SUITES.get("webnlg")
    stats = suite.stats(hypotheses, [lexs for _, lexs in webnlg_entries])
    unseen = np.array([category in UNSEEN for category, _ in webnlg_entries])
    for part, rows in (("seen", ~unseen), ("unseen", unseen), ("all", slice(None))):
        ours = aggregate(suite, stats, rows)
        for name, tolerance in WEBNLG_TOLERANCE.items():
            printed = official["scores"][part][name.upper()]
            assert ours[name] == pytest.approx(printed, abs=tolerance), (part, name)
        line = multi_bleu_line(stats["bleu"][rows].sum(axis=0), ours["bleu"])
        assert line == official["details"][part]["BLEU"]["raw"], part


# --- DART -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dart_references() -> list[list[str]]:
    """The three official reference files; a blank line means no such reference."""
    folder = shared_data_dir() / "dart" / "dart_reference"
    files = [lines(folder / f"all-delex-reference{j}.lex") for j in range(3)]
    return [[r for r in refs if r.strip()] for refs in zip(*files, strict=True)]


def test_dart_suite_reproduces_the_official_scores(dart_references):
    vectors = metric_vectors_dir() / "dart"
    official = json.loads((vectors / "official.json").read_text())
    hypotheses = lines(vectors / "bart-large_dart.txt")
    assert len(hypotheses) == len(dart_references) == 5097
    suite = SUITES.get("dart")
    stats = suite.stats(hypotheses, dart_references)
    ours = aggregate(suite, stats)
    for name, tolerance in DART_TOLERANCE.items():
        assert ours[name] == pytest.approx(official["scores"][name.upper()], abs=tolerance), name
    line = multi_bleu_line(stats["bleu"].sum(axis=0), ours["bleu"])
    assert line == official["details"]["BLEU"]["raw"]
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
