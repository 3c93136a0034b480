"""mteval-v13a BLEU smoothing and NIST against what the official Perl script printed.

`tests/data/mteval_smoothing.json` holds small constructed corpora (orders without a match,
outputs too short for an order, one-segment corpora, unequal reference counts, brevity penalty,
empty outputs) and the BLEU and NIST that e2e-metrics' mteval-v13a-sig.pl printed for them (see
its "about"). Our scores must round to the printed values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.metrics.mteval import BLEU_N, MtevalBleu, MtevalNist

DATA = json.loads((Path(__file__).parents[1] / "data" / "mteval_smoothing.json").read_text("utf-8"))
HALF_LAST_DIGIT = 0.5 * 10 ** -DATA["decimals"] + 1e-12
CASES = {case["name"]: case for case in DATA["cases"]}


@pytest.mark.parametrize("name", list(CASES))
def test_bleu_and_nist_round_to_what_the_official_script_printed(name):
    case = CASES[name]
    for metric, printed in ((MtevalBleu(), case["bleu"]), (MtevalNist(), case["nist"])):
        stats = metric.segment_stats(case["hypotheses"], case["references"])
        assert abs(metric.aggregate(stats) - printed) <= HALF_LAST_DIGIT, type(metric).__name__


def test_the_cases_cover_every_smoothing_branch():
    """Orders without a match (1 to 4 of them), orders without n-grams, and a zero score."""
    bleu = MtevalBleu()
    totals = [
        bleu.segment_stats(c["hypotheses"], c["references"]).sum(axis=0) for c in DATA["cases"]
    ]
    matches = np.array([t[2 : 2 + BLEU_N] for t in totals])
    counts = np.array([t[2 + BLEU_N :] for t in totals])
    unmatched = ((matches == 0) & (counts > 0)).sum(axis=1)
    assert set(unmatched) == {0, 1, 2, 3, 4}
    assert ((counts == 0) & (counts[:, :1] > 0)).any(axis=1).sum() >= 3
    assert 0.0 in {c["bleu"] for c in DATA["cases"]}
    assert all(c["bleu"] > 0 for c, u in zip(DATA["cases"], unmatched, strict=True) if u)
