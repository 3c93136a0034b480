"""Bootstrap over test inputs, from per-input statistics (no re-scoring, no JVM).

A resample draws n inputs with replacement; its score is the metric's corpus score of those rows
(`Metric.from_totals` of their summed statistics). The 95% interval is the 2.5th-97.5th
percentile of 1,000 seeded resamples. The paired bootstrap scores two systems on the same
resamples of the same inputs (Koehn 2004), which is what a regression gate compares.
With several training seeds, `bench.metrics.significance` adds the seeds' spread to this input
noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.metrics import Metric

N_RESAMPLES = 1000
SEED = 0
_CHUNK = 50  # resamples summed at once: bounds memory to 50 x n x k floats


def resample_indices(n: int, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """[n_resamples, n] input indices, the same for every metric and system given the seed."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def resampled_scores(metric: Metric, stats: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The metric's corpus score on each resample."""
    n = indices.shape[1]
    whole = bool(np.all(stats == np.round(stats))) and float(np.abs(stats).sum()) * n < 2**52
    scores = []
    for start in range(0, len(indices), _CHUNK):
        drawn = indices[start : start + _CHUNK]
        totals = _counted_totals(stats, drawn) if whole else stats[drawn].sum(axis=1)
        scores += [metric.from_totals(row, n) for row in totals]
    return np.asarray(scores, dtype=np.float64)


def _counted_totals(stats: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Column sums of each resample of whole-number statistics (counts, lengths) as a product
    of how often each input is drawn with the statistics: sums of whole numbers below 2^52 are
    exact in any order, so these equal the row-by-row sums, at a fraction of their cost."""
    rows = np.arange(len(drawn))[:, None] * len(stats) + drawn
    times = np.bincount(rows.ravel(), minlength=len(drawn) * len(stats))
    return times.reshape(len(drawn), len(stats)).astype(np.float64) @ stats


def interval(metric: Metric, stats: np.ndarray, indices: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of the metric over the resamples."""
    low, high = np.percentile(resampled_scores(metric, stats, indices), [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class Comparison:
    """System A minus system B on one metric. `verdict` is from A's side, in the metric's own
    direction: "better" or "worse" when the 95% interval of the difference excludes 0."""

    delta: float
    low: float
    high: float
    p_value: float
    verdict: str


def paired_bootstrap(
    metric: Metric,
    stats_a: np.ndarray,
    stats_b: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Comparison:
    """Compare two systems' statistics on the same inputs (row i of each is input i)."""
    if stats_a.shape[0] != stats_b.shape[0]:
        raise ValueError(f"{stats_a.shape[0]} inputs for system A, {stats_b.shape[0]} for B")
    indices = resample_indices(len(stats_a), n_resamples, seed)
    deltas = resampled_scores(metric, stats_a, indices) - resampled_scores(metric, stats_b, indices)
    return _comparison(metric, metric.aggregate(stats_a) - metric.aggregate(stats_b), deltas)


def _comparison(metric: Metric, delta: float, deltas: np.ndarray) -> Comparison:
    """The verdict on `delta` from the resampled differences `deltas`."""
    low, high = (float(x) for x in np.percentile(deltas, [2.5, 97.5]))
    # Two-sided: how often a resample's difference falls on either side of 0.
    p_value = min(1.0, 2.0 * min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))))
    if low > 0:
        verdict = "better" if metric.higher_is_better else "worse"
    elif high < 0:
        verdict = "worse" if metric.higher_is_better else "better"
    else:
        verdict = "same"
    return Comparison(delta, low, high, p_value, verdict)
