"""BLEU and NIST as mteval-v13a.pl computes them, the way the E2E scorer (e2e-metrics) runs it.

Facts of the official run (measured, see shared/metric-vectors/README.md): raw text in; mteval's
own tokenization (13a: punctuation split, period and comma split unless next to a digit,
apostrophes kept); lowercasing of ASCII letters only; a variable number of references per input
(the scorer's padding to 45 references is ignored everywhere). BLEU: 4-grams, corpus level,
brevity penalty against the closest reference length, ties to the shorter one, smoothed as
mteval-v13a's default `bleu_score` does (no order without a match zeroes the score). NIST: 5-grams,
information weights from the n-gram counts of all references of the test set, length penalty
against (total reference words / mean references per input), as the Perl code computes it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from bench.metrics import Metric, References
from bench.metrics.text import ascii_lower

BLEU_N = 4
NIST_N = 5
# mteval-v13a's NormalizeText, as sacrebleu's Tokenizer13a writes it: its first rule puts spaces
# around each of these characters, which one translation table does (a regular expression with a
# replacement template costs a Python call per match, and spaces match); then three rules.
_SPACED = str.maketrans({c: f" {c} " for c in '{|}~[\\]^_` !"#$%&()*+:;<=>?@/'})
_RULES = (
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period and comma unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # dash after a digit
)
_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))


def tokenize(text: str) -> list[str]:
    """mteval-v13a normalization: `tr/A-Z/a-z/` (ASCII only), then the 13a tokenizer."""
    line = ascii_lower(text).replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, character in _ENTITIES:
            line = line.replace(entity, character)
    line = f" {line} ".translate(_SPACED)
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def ngrams(words: list[str], max_n: int) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for n in range(1, max_n + 1):
        counts.update(zip(*(words[k:] for k in range(n)), strict=False))
    return counts


@lru_cache(maxsize=1 << 16)
def _counted(text: str) -> tuple[int, Counter[tuple[str, ...]]]:
    """Length and n-gram counts (n <= 5) of a text, shared by BLEU and NIST."""
    words = tokenize(text)
    return len(words), ngrams(words, NIST_N)


@lru_cache(maxsize=1 << 12)  # the inputs of a test set: BLEU's pass fills it, NIST's reads it
def _matched(hypothesis: str, references: tuple[str, ...]) -> dict[tuple[str, ...], int]:
    """The clipped n-gram matches of one input, shared by BLEU and NIST."""
    return clipped(_counted(hypothesis)[1], [_counted(r)[1] for r in references])


def clipped(
    counts: Counter[tuple[str, ...]], references: Sequence[Counter[tuple[str, ...]]]
) -> dict[tuple[str, ...], int]:
    """Per hypothesis n-gram some reference has, its count clipped by its largest count in any
    one reference; in the hypothesis' order, so that NIST's sums of their information do not
    depend on the string hash seed (in set order, they changed in the last bit from run to run)."""
    best: dict[tuple[str, ...], int] = {}
    for ref in references:
        for gram in counts.keys() & ref.keys():
            best[gram] = max(best.get(gram, 0), ref[gram])
    return {gram: min(count, best[gram]) for gram, count in counts.items() if gram in best}


def closest_length(hyp_len: int, ref_lens: Sequence[int]) -> int:
    """The reference length closest to the hypothesis length, ties going to the shorter one."""
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


class MtevalBleu(Metric):
    description = "BLEU-4 as mteval-v13a (E2E scorer), corpus level, 0-1"
    scale = "0-1"

    def segment_stats(self, hypotheses: Sequence[str], references: References) -> np.ndarray:
        """Columns: hypothesis length, closest reference length, then matches and totals n=1..4."""
        rows = []
        for hyp, refs in zip(hypotheses, references, strict=True):
            length = _counted(hyp)[0]
            matches = [0] * BLEU_N
            for gram, count in _matched(hyp, tuple(refs)).items():
                if len(gram) <= BLEU_N:
                    matches[len(gram) - 1] += count
            totals = [max(0, length - n) for n in range(BLEU_N)]
            ref_len = closest_length(length, [_counted(r)[0] for r in refs])
            rows.append([length, ref_len, *matches, *totals])
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2 + 2 * BLEU_N)

    def from_totals(self, totals: np.ndarray, n: int) -> float:
        """mteval-v13a's smoothed BLEU (its `bleu_score`), so a corpus with no 4-gram match is
        not scored 0: the k-th order without a match gets precision 1 / (2^k * n-grams); an
        order the outputs have no n-grams of counts as precision 1; no output words at all is 0."""
        hyp_len, ref_len = totals[0], totals[1]
        matches, counts = totals[2 : 2 + BLEU_N], totals[2 + BLEU_N :]
        if hyp_len == 0:
            return 0.0
        log_precision, smooth = 0.0, 1.0
        for match, count in zip(matches, counts, strict=True):
            if count == 0:
                continue
            if match == 0:
                smooth *= 2.0
            hits = match if match else 1.0 / smooth
            log_precision += math.log(hits / count)
        brevity = math.exp(min(0.0, 1.0 - ref_len / hyp_len))
        return brevity * math.exp(log_precision / BLEU_N)


class MtevalNist(Metric):
    """NIST-5; its information weights depend on the whole reference set of the corpus scored,
    so they are fixed once by `segment_stats` (like CIDEr's IDF) and resamples reuse them."""

    description = "NIST-5 as mteval-v13a (E2E scorer, Perl length penalty), corpus level"
    scale = "0-inf"

    def segment_stats(self, hypotheses: Sequence[str], references: References) -> np.ndarray:
        """Columns: information of matches n=1..5, hypothesis n-grams n=1..5, reference words,
        number of references."""
        counted = [[_counted(r) for r in refs] for refs in references]
        info = self._information(counted)
        rows = []
        for hyp, refs, ref_counts in zip(hypotheses, references, counted, strict=True):
            length = _counted(hyp)[0]
            matched_info = [0.0] * NIST_N
            for gram, count in _matched(hyp, tuple(refs)).items():
                matched_info[len(gram) - 1] += info[gram] * count
            totals = [max(0, length - n) for n in range(NIST_N)]
            rows.append([*matched_info, *totals, sum(n for n, _ in ref_counts), len(refs)])
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2 * NIST_N + 2)

    @staticmethod
    def _information(
        counted: list[list[tuple[int, Counter[tuple[str, ...]]]]],
    ) -> dict[tuple[str, ...], float]:
        """info(w1..wn) = log2(count(w1..wn-1) / count(w1..wn)) over every reference."""
        counts: Counter[tuple[str, ...]] = Counter()
        for refs in counted:
            for _, ref in refs:
                counts.update(ref.elements())  # counted in C, unlike update(a mapping)
        total_words = sum(n for refs in counted for n, _ in refs)
        return {
            gram: math.log2((counts[gram[:-1]] if len(gram) > 1 else total_words) / count)
            for gram, count in counts.items()
        }

    def from_totals(self, totals: np.ndarray, n: int) -> float:
        info, counts = totals[:NIST_N], totals[NIST_N : 2 * NIST_N]
        ref_words, n_refs = totals[2 * NIST_N], totals[2 * NIST_N + 1]
        score = float(np.sum(info / np.maximum(counts, 1.0)))
        if n_refs == 0 or ref_words == 0:
            return 0.0
        return score * _nist_length_penalty(counts[0] / (ref_words / (n_refs / n)))


def _nist_length_penalty(ratio: float) -> float:
    """mteval's penalty: 1 at or above ratio 1, 0.5 at ratio 2/3, exp(-beta log^2 ratio)."""
    if ratio >= 1:
        return 1.0
    if ratio <= 0:
        return 0.0
    beta = -math.log(0.5) / math.log(1.5) ** 2
    return math.exp(-beta * math.log(ratio) ** 2)
