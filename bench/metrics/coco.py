"""ROUGE-L and CIDEr-D as the coco-caption code computes them (pycocoevalcap), as the E2E scorer
runs it: every text through the Stanford PTB tokenizer 3.4.1 (lowercased, punctuation tokens
removed), then coco's ROUGE-L (LCS F, beta 1.2, best precision and best recall over references
taken separately) and "CIDEr" (CIDEr-D: sigma 6, clipped counts, x10), each a mean of segment
scores. CIDEr's IDF comes from the reference groups of the whole corpus scored.

Both are pycocoevalcap's code (1.2) rewritten for speed with the same floating-point operations
in the same order, so every segment score is bit for bit pycocoevalcap's: ROUGE-L's LCS length
comes from a bit-parallel algorithm (an exact integer); CIDEr computes each IDF once per document
frequency and skips the n-grams a reference lacks (which add exactly 0).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

from bench.metrics import MeanMetric, References
from bench.metrics.java import coco_file, run_jar_parts

_PUNCTUATION = frozenset(PUNCTUATIONS)
BETA = 1.2  # coco's ROUGE-L: recall weighs 1.2 times precision
CIDER_N, CIDER_SIGMA = 4, 6.0  # n-grams 1-4; the length penalty's standard deviation
PTB_LINES_PER_JVM = 2500  # lines whose tokenizing pays for a JVM's start


def ptb_tokenize(texts: Sequence[str], kept: int = 0) -> list[str]:
    """coco's PTBTokenizer wrapper: one line per text. With `-preserveLines` each line is
    tokenized on its own, so a few thousand lines go to each JVM, and the first `kept` texts
    (references) are tokenized once and kept (`run_jar_parts`)."""
    jar = coco_file("tokenizer", "stanford-corenlp-3.4.1.jar")
    args = ["-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines"]
    lines = [text.replace("\r", " ").replace("\n", " ") for text in texts]
    out = run_jar_parts([*args, "-lowerCase"], lines, jar.parent, PTB_LINES_PER_JVM, kept)
    return [" ".join(w for w in line.rstrip().split(" ") if w not in _PUNCTUATION) for line in out]


def coco_view(
    hypotheses: Sequence[str], references: References
) -> tuple[list[str], list[list[str]]]:
    """Hypotheses and references PTB-tokenized, as COCOEvalCap does (references first: their
    tokens are kept from run to run)."""
    flat = [r for refs in references for r in refs]
    tokens = ptb_tokenize([*flat, *hypotheses], kept=len(flat))
    rest = iter(tokens[: len(flat)])
    return tokens[len(flat) :], [[next(rest) for _ in refs] for refs in references]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """The length of the longest common subsequence of two word lists, bit-parallel (Hyyrö
    2004): one bit per word of `a`, updated once per word of `b`."""
    masks: dict[str, int] = {}
    for i, word in enumerate(a):
        masks[word] = masks.get(word, 0) | 1 << i
    full = (1 << len(a)) - 1
    v = full
    for word in b:
        u = v & masks.get(word, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(hypothesis: str, references: Sequence[str]) -> float:
    """pycocoevalcap's `Rouge.calc_score`: LCS F-measure with the best precision and the best
    recall over the references taken separately (words split on single spaces)."""
    words = hypothesis.split(" ")
    precisions, recalls = [], []
    for reference in references:
        ref_words = reference.split(" ")
        lcs = lcs_length(ref_words, words)
        precisions.append(lcs / float(len(words)))
        recalls.append(lcs / float(len(ref_words)))
    p, r = max(precisions), max(recalls)
    return ((1 + BETA**2) * p * r) / float(r + BETA**2 * p) if p != 0 and r != 0 else 0.0


class CocoRougeL(MeanMetric):
    description = "ROUGE-L as coco-caption (LCS F, beta 1.2), mean over inputs, 0-1"
    scale = "0-1"

    def segment_scores(self, hypotheses: Sequence[str], references: References) -> list[float]:
        return [rouge_l(h, refs) for h, refs in zip(hypotheses, references, strict=True)]


Grams = list[Counter[tuple[str, ...]]]
Vector = tuple[list[dict[tuple[str, ...], float]], list[float], int]


def _ngrams(text: str) -> Grams:
    """pycocoevalcap's `precook`, one counter per order: counts of the 1- to 4-grams, each
    order in coco's order."""
    words = text.split()
    return [
        Counter(zip(*(words[k:] for k in range(n)), strict=False)) for n in range(1, CIDER_N + 1)
    ]


class CiderD(MeanMetric):
    description = "CIDEr-D as coco-caption (IDF from the corpus' references), mean over inputs"
    scale = "0-10"

    def segment_scores(self, hypotheses: Sequence[str], references: References) -> list[float]:
        """pycocoevalcap's `CiderScorer.compute_cider`, segment by segment."""
        refs = [[_ngrams(r) for r in group] for group in references]
        frequency: Counter[tuple[str, ...]] = Counter()  # in how many reference groups
        for group in refs:
            frequency.update({gram for grams in group for order in grams for gram in order})
        log_groups = np.log(float(len(refs)))
        idf = {  # numpy's log, as coco computes it, once per document frequency
            f: float(log_groups - np.log(max(1.0, float(f)))) for f in {0, *frequency.values()}
        }
        weights = {gram: idf[f] for gram, f in frequency.items()}
        scores = []
        for hyp, group in zip(hypotheses, refs, strict=True):
            vector = _tf_idf(_ngrams(hyp), weights, idf[0])
            total = [0.0] * CIDER_N
            for ref in group:
                for n, value in enumerate(_similarity(vector, _tf_idf(ref, weights, idf[0]))):
                    total[n] += value
            score = np.mean(np.array(total))  # numpy's summation order, as coco's
            score /= len(group)
            score *= 10.0
            scores.append(float(score))
        return scores


def _tf_idf(grams: Grams, weights: dict[tuple[str, ...], float], unseen: float) -> Vector:
    """coco's `counts2vec`: tf-idf weights per n-gram order, their norms (squares summed in
    coco's order), and the "length", its number of bigrams (a quirk of coco's code, kept)."""
    vector, norm = [], []
    for counts in grams:
        weighted = {
            gram: float(count) * weights.get(gram, unseen) for gram, count in counts.items()
        }
        squares = 0.0
        for value in weighted.values():
            squares += value**2
        vector.append(weighted)
        norm.append(math.sqrt(squares))
    return vector, norm, grams[1].total()


def _similarity(hyp: Vector, ref: Vector) -> list[float]:
    """coco's `sim`: per order, the clipped cosine similarity times the Gaussian length
    penalty. An n-gram the reference lacks adds exactly 0, so only shared ones are summed."""
    (hyp_vector, hyp_norm, hyp_length), (ref_vector, ref_norm, ref_length) = hyp, ref
    delta = float(hyp_length - ref_length)
    penalty = math.e ** (-(delta**2) / (2 * CIDER_SIGMA**2))
    values = []
    for n in range(CIDER_N):
        value, theirs = 0.0, ref_vector[n]
        for gram, weight in hyp_vector[n].items():
            other = theirs.get(gram)
            if other is not None:
                value += min(weight, other) * other
        if hyp_norm[n] != 0 and ref_norm[n] != 0:
            value /= hyp_norm[n] * ref_norm[n]
        values.append(value * penalty)
    return values
