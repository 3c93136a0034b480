"""tercom's edit count (its defaults, as sacrebleu's `lib_ter` ports them), compiled with numba.

sacrebleu's greedy shift search and the beam-restricted Levenshtein distance that the search calls
thousands of times per long sentence run here step for step as `lib_ter` does them: the same
candidate shifts in the same order, ranking, limits, band, costs, tie-breaking and trace. In pure
Python, TER took minutes on WebNLG and DART; with only the distance compiled, 6 s on WebNLG's
1,862 outputs. Its own module, because importing numba takes most of a second that suites
without TER need not pay.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from sacrebleu.metrics.lib_ter import _MAX_SHIFT_CANDIDATES, _MAX_SHIFT_DIST, _MAX_SHIFT_SIZE

BEAM_WIDTH = 25  # sacrebleu's _BEAM_WIDTH, tercom's beam
INFINITY = 10**16
NOP, SUB, INS, DEL, UNDEFINED = (ord(c) for c in " sidx")  # sacrebleu's trace letters


@numba.njit(cache=True)
def _band(i: int, n_h: int, n_r: int) -> tuple[int, int]:
    """The reference positions [low, high) computed in row i: a band around the diagonal
    (scaled by the length ratio), wider for a much longer reference, complete in the last row."""
    ratio = n_r / n_h if n_h else 1.0
    width = BEAM_WIDTH
    if ratio / 2 > BEAM_WIDTH:
        width = math.ceil(ratio / 2 + BEAM_WIDTH)
    diagonal = math.floor(i * ratio)
    return max(0, diagonal - width), n_r + 1 if i == n_h else min(n_r + 1, diagonal + width)


@numba.njit(cache=True)
def _banded_distance(hyp: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edit distance (hypothesis to reference, unit costs) within a band around the diagonal:
    the cost matrix (the distance is its last cell) and the trace; on equal costs a match or
    substitution wins over a deletion, and a deletion over an insertion, as in sacrebleu's
    BeamEditDistance."""
    n_h, n_r = len(hyp), len(ref)
    cost = np.full((n_h + 1, n_r + 1), INFINITY, dtype=np.int64)
    op = np.full((n_h + 1, n_r + 1), UNDEFINED, dtype=np.uint8)
    for j in range(n_r + 1):
        cost[0, j] = j
        op[0, j] = INS
    for i in range(1, n_h + 1):
        low, high = _band(i, n_h, n_r)
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
    return cost, trace[k:]


@numba.njit(cache=True)
def _banded_cost(hyp: np.ndarray, ref: np.ndarray, rows: np.ndarray, start: int) -> int:
    """`_banded_distance` without the trace, for the thousands of shifts that only need the
    distance: the same band and costs, one row at a time, from row `start` of `rows`, the cost
    matrix of a sentence of the same length whose first `start` words are these."""
    n_h, n_r = len(hyp), len(ref)
    previous, current = rows[start].copy(), np.empty(n_r + 1, dtype=np.int64)
    for i in range(start + 1, n_h + 1):
        current[:] = INFINITY
        low, high = _band(i, n_h, n_r)
        for j in range(low, high):
            if j == 0:
                current[0] = previous[0] + 1
                continue
            step = previous[j - 1] + (0 if hyp[i - 1] == ref[j - 1] else 1)
            current[j] = min(INFINITY, step, previous[j] + 1, current[j - 1] + 1)
        previous, current = current, previous
    return previous[n_r]


@numba.njit(cache=True)
def _alignment(trace: np.ndarray, n_h: int, n_r: int) -> tuple[np.ndarray, ...]:
    """sacrebleu's `trace_to_alignment` of the flipped trace: each reference word's position in
    the hypothesis (`align`), and which hypothesis and reference words are errors."""
    align = np.zeros(n_r, dtype=np.int64)
    hyp_err, ref_err = np.zeros(n_h, dtype=np.int64), np.zeros(n_r, dtype=np.int64)
    h, r = -1, -1
    for op in trace:
        if op in (NOP, SUB):
            h, r = h + 1, r + 1
            align[r] = h
            if op == SUB:
                hyp_err[h], ref_err[r] = 1, 1
        elif op == DEL:  # a hypothesis word (an insertion once flipped)
            h += 1
            hyp_err[h] = 1
        else:  # INS, a reference word
            r += 1
            align[r], ref_err[r] = h, 1
    return align, hyp_err, ref_err


@numba.njit(cache=True)
def _perform_shift(words: np.ndarray, start: int, length: int, target: int) -> np.ndarray:
    """sacrebleu's `_perform_shift`: words[start:start + length] moved before `target`."""
    end, after = start + length, length + target
    if target < start:
        parts = (words[:target], words[start:end], words[target:start], words[end:])
    elif target > end:
        parts = (words[:start], words[end:target], words[start:end], words[target:])
    else:
        parts = (words[:start], words[end:after], words[start:end], words[after:])
    return np.concatenate(parts)


@numba.njit(cache=True)
def _better(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Tercom's ranking of shifts, as sacrebleu compares its candidate tuples: gain, then
    length, then the earliest start, then the earliest target."""
    for k in range(4):
        if a[k] != b[k]:
            return a[k] > b[k]
    return False


@numba.njit(cache=True)
def _try_targets(
    hyp: np.ndarray,
    ref: np.ndarray,
    rows: np.ndarray,
    align: np.ndarray,
    run: tuple[int, int, int, int],
    best: tuple[tuple[int, int, int, int], np.ndarray],
    checked: int,
) -> tuple[tuple[tuple[int, int, int, int], np.ndarray], int]:
    """The inner loop of sacrebleu's `_shift` for one matching run (distance before shifting,
    start in the hypothesis, start in the reference, length): the run moved to just after the
    hypothesis word aligned with each reference position from its start - 1 (-1: the sentence
    start) to its end, each target once. `best` is the best (ranking, shifted words) so far;
    `rows` the hypothesis' cost matrix, whose rows before the first moved word are reused."""
    score, start_h, start_r, length = run
    previous = -1
    for r in range(start_r - 1, start_r + length):
        if r >= len(ref):
            break
        target = 0 if r == -1 else align[r] + 1
        if target == previous:
            continue
        previous = target
        shifted = _perform_shift(hyp, start_h, length, target)
        gain = score - _banded_cost(shifted, ref, rows, min(start_h, target))
        candidate = (gain, length, -start_h, -target)
        checked += 1
        if _better(candidate, best[0]):
            best = (candidate, shifted)
    return best, checked


@numba.njit(cache=True)
def _shift(hyp: np.ndarray, ref: np.ndarray, checked: int) -> tuple[int, np.ndarray, int]:
    """sacrebleu's `_shift`: the best shift of a matching run of words (its gain, the shifted
    words) among the runs that `_find_shifted_pairs` yields, in its order. A best shift that
    gains nothing ends the search whichever it is, so "none yet" ranks as gain 0."""
    n_h, n_r = len(hyp), len(ref)
    rows, trace = _banded_distance(hyp, ref)
    score = rows[n_h, n_r]
    align, hyp_err, ref_err = _alignment(trace, n_h, n_r)
    best = ((0, 0, 0, 0), hyp)
    for start_h in range(n_h):
        for start_r in range(
            max(0, start_h - _MAX_SHIFT_DIST), min(n_r, start_h + _MAX_SHIFT_DIST + 1)
        ):
            length = 0
            while hyp[start_h + length] == ref[start_r + length] and length < _MAX_SHIFT_SIZE:
                length += 1
                if (
                    hyp_err[start_h : start_h + length].any()
                    and ref_err[start_r : start_r + length].any()
                    and not start_h <= align[start_r] < start_h + length
                ):
                    run = (score, start_h, start_r, length)
                    best, checked = _try_targets(hyp, ref, rows, align, run, best, checked)
                    if checked >= _MAX_SHIFT_CANDIDATES:
                        return best[0][0], best[1], checked
                if n_h == start_h + length or n_r == start_r + length:
                    break
    return best[0][0], best[1], checked


@numba.njit(cache=True)
def edit_count(hyp: np.ndarray, ref: np.ndarray) -> int:
    """sacrebleu's `translation_edit_rate` edit count on word ids."""
    if len(ref) == 0:
        return len(hyp)
    shifts, checked = 0, 0
    while True:
        gain, shifted, checked = _shift(hyp, ref, checked)
        if checked >= _MAX_SHIFT_CANDIDATES or gain <= 0:
            break
        shifts, hyp = shifts + 1, shifted
    return shifts + _banded_distance(hyp, ref)[0][-1, -1]


def encode(words: list[str], ids: dict[str, int]) -> np.ndarray:
    """Word ids, numbering new words as they come (only equality matters)."""
    return np.array([ids.setdefault(w, len(ids)) for w in words], dtype=np.int64)
