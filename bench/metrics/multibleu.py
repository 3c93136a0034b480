"""BLEU as Moses' multi-bleu.perl computes it, as the WebNLG 2017 and DART scripts run it.

multi-bleu.perl splits on whitespace only (its input is already tokenized), optionally
lowercases (`-lc`), clips n-gram counts by the maximum over references, and takes the brevity
penalty against the closest reference length (ties to the shorter one). Empty reference lines
(an input with fewer references than there are reference files) still count as references of
length 0 in that choice, so `pad_to` restores the official number of reference files.
The score is x100, as it prints, at full precision (the script rounds to 2 decimals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bench.metrics import Metric, References
from bench.metrics.mteval import clipped, closest_length, ngrams
from bench.metrics.text import ascii_lower, perl_words

MAX_N = 4


class MultiBleu(Metric):
    scale = "0-100"

    def __init__(self, lowercase: bool, pad_to: int) -> None:
        self.lowercase = lowercase
        self.pad_to = pad_to
        flag = " -lc" if lowercase else ""
        self.description = f"BLEU-4 as multi-bleu.perl{flag} with {pad_to} reference files"

    def segment_stats(self, hypotheses: Sequence[str], references: References) -> np.ndarray:
        """Columns: hypothesis length, closest reference length, matches and totals n=1..4."""
        rows = []
        for hyp, refs in zip(hypotheses, references, strict=True):
            words = self._words(hyp)
            ref_words = [self._words(r) for r in [*refs, *[""] * (self.pad_to - len(refs))]]
            matches = [0] * MAX_N
            for gram, count in clipped(
                ngrams(words, MAX_N), [ngrams(r, MAX_N) for r in ref_words]
            ).items():
                matches[len(gram) - 1] += count
            totals = [max(0, len(words) - n) for n in range(MAX_N)]
            ref_len = closest_length(len(words), [len(r) for r in ref_words])
            rows.append([len(words), ref_len, *matches, *totals])
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2 + 2 * MAX_N)

    def _words(self, text: str) -> list[str]:
        return perl_words(ascii_lower(text) if self.lowercase else text)

    def from_totals(self, totals: np.ndarray, n: int) -> float:
        hyp_len, ref_len = totals[0], totals[1]
        matches, counts = totals[2 : 2 + MAX_N], totals[2 + MAX_N :]
        if ref_len == 0 or hyp_len == 0 or (matches == 0).any():
            return 0.0  # multi-bleu's log(0) is -9999999999: BLEU 0
        brevity = math.exp(1.0 - ref_len / hyp_len) if hyp_len < ref_len else 1.0
        return 100.0 * brevity * math.exp(float(np.mean(np.log(matches / counts))))
