"""TER as tercom 0.7.25 computes it with its defaults, on sacrebleu's port of tercom.

tercom defaults: case-insensitive, punctuation kept, no normalization (the WebNLG and DART scripts
pass no options). Per input, the fewest edits over its references and the mean reference length;
corpus TER = total edits / total mean reference length (0-1, lower is better).

sacrebleu's tokenizer and greedy shift search are used as they are. Its beam-restricted
Levenshtein distance, which the shift search calls thousands of times per long sentence, runs
here compiled (numba) with the same band, costs, tie-breaking and trace: in pure Python, TER took
minutes on WebNLG and DART.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
from sacrebleu.metrics.lib_ter import _MAX_SHIFT_CANDIDATES, _shift
from sacrebleu.tokenizers.tokenizer_ter import TercomTokenizer

from bench.metrics import Metric, References

BEAM_WIDTH = 25  # sacrebleu's _BEAM_WIDTH, tercom's beam
INFINITY = 10**16
NOP, SUB, INS, DEL, UNDEFINED = (ord(c) for c in " sidx")  # sacrebleu's trace letters


@numba.njit(cache=True)
def _banded_distance(hyp: np.ndarray, ref: np.ndarray) -> tuple[int, np.ndarray]:
    """Edit distance (hypothesis to reference, unit costs) within a band around the diagonal,
    and its trace; on equal costs a match or substitution wins over a deletion, and a deletion
    over an insertion, as in sacrebleu's BeamEditDistance."""
    n_h, n_r = len(hyp), len(ref)
    cost = np.full((n_h + 1, n_r + 1), INFINITY, dtype=np.int64)
    op = np.full((n_h + 1, n_r + 1), UNDEFINED, dtype=np.uint8)
    for j in range(n_r + 1):
        cost[0, j] = j
        op[0, j] = INS
    ratio = n_r / n_h if n_h else 1.0
    width = BEAM_WIDTH
    if ratio / 2 > BEAM_WIDTH:
        width = math.ceil(ratio / 2 + BEAM_WIDTH)
    for i in range(1, n_h + 1):
        diagonal = math.floor(i * ratio)
        low = max(0, diagonal - width)
        high = n_r + 1 if i == n_h else min(n_r + 1, diagonal + width)
        for j in range(low, high):
            if j == 0:
                cost[i, 0] = cost[i - 1, 0] + 1
                op[i, 0] = DEL
                continue
            same = hyp[i - 1] == ref[j - 1]
            candidates = (
                (cost[i - 1, j - 1] + (0 if same else 1), NOP if same else SUB),
                (cost[i - 1, j] + 1, DEL),
                (cost[i, j - 1] + 1, INS),
            )
            for value, name in candidates:
                if cost[i, j] > value:
                    cost[i, j] = value
                    op[i, j] = name
    trace = np.empty(n_h + n_r, dtype=np.uint8)
    k = len(trace)
    i, j = n_h, n_r
    while i > 0 or j > 0:
        k -= 1
        trace[k] = op[i, j]
        if trace[k] == NOP or trace[k] == SUB:
            i -= 1
            j -= 1
        elif trace[k] == INS:
            j -= 1
        elif trace[k] == DEL:
            i -= 1
        else:
            raise ValueError("TER trace through a cell outside the band")
    return cost[n_h, n_r], trace[k:]


class _EditDistance:
    """The callable that sacrebleu's shift search expects: words -> (distance, trace)."""

    def __init__(self, ref: list[str], ids: dict[str, int]) -> None:
        self.ids = ids
        self.ref = self._encode(ref)

    def _encode(self, words: list[str]) -> np.ndarray:
        return np.array([self.ids[w] for w in words], dtype=np.int64)

    def __call__(self, words: list[str]) -> tuple[int, str]:
        distance, trace = _banded_distance(self._encode(words), self.ref)
        return int(distance), trace.tobytes().decode("ascii")


def edits(hyp: list[str], ref: list[str]) -> int:
    """tercom's edit count of a hypothesis against one reference: greedy shifts, each counting
    one edit, while they lower the distance (at most 1,000 candidates), then the distance."""
    if not ref:
        return len(hyp)
    ids = {w: i for i, w in enumerate(dict.fromkeys([*ref, *hyp]))}
    distance = _EditDistance(ref, ids)
    shifts, checked = 0, 0
    while True:
        gain, shifted, checked = _shift(hyp, ref, distance, checked)
        if checked >= _MAX_SHIFT_CANDIDATES or gain <= 0:
            break
        shifts, hyp = shifts + 1, shifted
    return shifts + distance(hyp)[0]


class Ter(Metric):
    description = "TER as tercom 0.7.25 (defaults: case-insensitive, punctuation kept), 0-1"
    scale = "0-1"
    higher_is_better = False

    def segment_stats(self, hypotheses: Sequence[str], references: References) -> np.ndarray:
        """Columns: fewest edits over the references, mean reference length (in words)."""
        tokenize = TercomTokenizer(normalized=False, no_punct=False, case_sensitive=False)
        rows = []
        for hyp, refs in zip(hypotheses, references, strict=True):
            words = tokenize(hyp.rstrip()).split()
            ref_words = [tokenize(r.rstrip()).split() for r in refs]
            rows.append(
                [min(edits(words, r) for r in ref_words), sum(map(len, ref_words)) / len(refs)]
            )
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2)

    def from_totals(self, totals: np.ndarray, n: int) -> float:
        edit_count, ref_len = float(totals[0]), float(totals[1])
        if ref_len > 0:
            return edit_count / ref_len
        return 1.0 if edit_count > 0 else 0.0  # tercom's convention for empty references
