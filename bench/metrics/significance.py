"""Is a candidate worse than a baseline beyond training noise? A test over seeds, with the test
inputs resampled within seeds, and Holm's correction across the many metrics a gate looks at.

Two sources of noise separate one run's score from the method's: the training seed (init, data
order; with other hardware or thread counts, other float sums and so another trajectory), and
the choice of test inputs. The seeds' scores on the full test set give the seed-to-seed variance;
a bootstrap over the inputs (the same resampled inputs for every seed of both sides) gives the
input noise of the difference of the two means. The difference's variance is their sum, and its
reference distribution a Student t whose degrees of freedom are those of the seed part (the
bootstrap part is known to many):

- paired (the caller decides: `bench.results.compare` pairs the same seeds run on the same
  hardware): seed s of the candidate against seed s of the baseline, se^2 = var(d_s) / n +
  var_inputs, n - 1 degrees of freedom (a paired t-test). On one machine a seed's two runs share
  every float until the change under test: a change to decoding leaves training as it was, and
  pairing removes the seed noise;
- unpaired: se^2 = s_b^2 / m + s_c^2 / n + var_inputs with Welch-Satterthwaite degrees of
  freedom; a side with one seed borrows the other side's spread (one seed cannot show its own).
  Runs on other hardware (another thread count) follow independent trajectories from the same
  seed, and prefix-tuning's scores over seeds are far from normal (bimodal on unseen inputs):
  pairing three such runs let close triples pass for a shift (measured with `bench perf gate`:
  10.5% false alarms per gate run at 3 seeds, against 2.8% unpaired).

With one seed a side nothing can show seed noise: the test is the paired bootstrap over inputs
alone (Koehn 2004, `bench.metrics.bootstrap.paired_bootstrap`), said in `SeedTest.noise`.

A regression is "the candidate is worse by more than `tolerance`": a one-sided test of
H0: gain >= -tolerance (gain: the difference in the metric's better direction), rejected at a
family-wise level of 2.5% by Holm's step-down procedure (Holm 1979) over every row of a gate run,
so a regression is always also outside the row's two-sided 95% interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from bench.metrics import Metric
from bench.metrics.bootstrap import N_RESAMPLES, SEED, resample_indices, resampled_scores

ALPHA = 0.025  # one-sided, family-wise: a regression is outside the two-sided 95% interval
SEEDS_AND_INPUTS = "seeds and inputs"
INPUTS_ONLY = "inputs only (one seed a side)"


@dataclass(frozen=True)
class SeedTest:
    """Candidate minus baseline on one metric, over their seeds (on the metric's own scale)."""

    delta: float  # mean over the candidate's seeds minus mean over the baseline's
    low: float  # the delta's 95% interval
    high: float
    p_value: float  # two-sided, of delta != 0
    p_worse: float  # one-sided, of "worse by more than the tolerance" (before Holm)
    verdict: str  # better | same | worse: the 95% interval from the candidate's side
    se: float
    df: float  # degrees of freedom of the t reference (inf: inputs only)
    noise: str  # SEEDS_AND_INPUTS or INPUTS_ONLY


def seed_test(
    metric: Metric,
    baseline: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    tolerance: float = 0.0,
    paired: bool = False,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> SeedTest:
    """Test the candidate's seeds against the baseline's: each a per-input statistics array
    (`Metric.stats`) of one seed on the same inputs, row i of each being input i; with `paired`,
    item s of both lists is the same seed. `tolerance` is on the metric's own scale (E2E BLEU:
    0.005 is half a BLEU point)."""
    if paired and len(baseline) != len(candidate):
        raise ValueError(f"paired: {len(baseline)} baseline seeds, {len(candidate)} candidate")
    rows = {len(s) for s in (*baseline, *candidate)}
    if len(rows) != 1 or not baseline or not candidate:
        raise ValueError(f"every seed must score the same inputs (row counts {sorted(rows)})")
    indices = resample_indices(rows.pop(), n_resamples, seed)
    base, cand = (
        [SeedScores.of(metric, stats, indices) for stats in side] for side in (baseline, candidate)
    )
    return compare_seeds(base, cand, metric.higher_is_better, tolerance, paired)


@dataclass(frozen=True)
class SeedScores:
    """One seed's score on the test inputs, and on each bootstrap resample of them."""

    score: float
    resampled: np.ndarray  # [n_resamples], the same resamples for every seed compared

    @classmethod
    def of(cls, metric: Metric, stats: np.ndarray, indices: np.ndarray) -> SeedScores:
        return cls(metric.aggregate(stats), resampled_scores(metric, stats, indices))


def compare_seeds(
    baseline: Sequence[SeedScores],
    candidate: Sequence[SeedScores],
    higher_is_better: bool = True,
    tolerance: float = 0.0,
    paired: bool = False,
) -> SeedTest:
    """`seed_test` from scores already resampled (a simulation draws seeds from a stored pool
    without scoring them again)."""
    base_scores = np.array([s.score for s in baseline])
    cand_scores = np.array([s.score for s in candidate])
    sign = 1.0 if higher_is_better else -1.0
    delta = float(cand_scores.mean() - base_scores.mean())
    resampled = np.mean([s.resampled for s in candidate], axis=0) - np.mean(
        [s.resampled for s in baseline], axis=0
    )
    if len(baseline) == len(candidate) == 1:
        return _inputs_only(delta, resampled, sign, tolerance)
    if paired:
        diffs = cand_scores - base_scores
        parts = [(float(np.var(diffs, ddof=1)) / len(diffs), len(diffs) - 1)]
    else:
        parts = [_spread(base_scores, cand_scores), _spread(cand_scores, base_scores)]
    return _over_seeds(delta, parts, resampled, sign, tolerance)


def _spread(scores: np.ndarray, other: np.ndarray) -> tuple[float, int]:
    """The variance of one side's mean over its seeds and its degrees of freedom; one seed
    borrows the other side's spread."""
    shown = scores if len(scores) > 1 else other
    return float(np.var(shown, ddof=1)) / len(scores), len(shown) - 1


def _inputs_only(delta: float, resampled: np.ndarray, sign: float, tolerance: float) -> SeedTest:
    """One seed a side: the paired bootstrap's percentile interval and p-values."""
    low, high = (float(x) for x in np.percentile(resampled, [2.5, 97.5]))
    p_value = min(1.0, 2.0 * min(float(np.mean(resampled <= 0)), float(np.mean(resampled >= 0))))
    p_worse = float(np.mean(sign * resampled + tolerance >= 0))
    se = float(np.std(resampled, ddof=1))
    return SeedTest(
        delta, low, high, p_value, p_worse, _verdict(sign, low, high), se, math.inf, INPUTS_ONLY
    )


def _over_seeds(
    delta: float,
    parts: list[tuple[float, int]],
    resampled: np.ndarray,
    sign: float,
    tolerance: float,
) -> SeedTest:
    """The t test of `delta`, from its seed variance `parts` ((variance, degrees of freedom)
    each) and the input noise of its `resampled` values."""
    inputs = float(np.var(resampled, ddof=1))
    se = math.sqrt(sum(v for v, _ in parts) + inputs)
    seed_part = sum(v * v / df for v, df in parts)
    df = (se**4 / seed_part) if seed_part > 0 else math.inf
    if se == 0:  # every seed and resample the same: the delta is exact
        gain = sign * delta
        p_worse = 0.0 if gain + tolerance < 0 else 1.0
        p_value = 0.0 if delta else 1.0
        return SeedTest(
            delta, delta, delta, p_value, p_worse, _verdict(sign, delta, delta), 0.0, df,
            SEEDS_AND_INPUTS,
        )  # fmt: skip
    reference = scipy_stats.t(df) if math.isfinite(df) else scipy_stats.norm()
    half = float(reference.ppf(0.975)) * se
    p_value = float(2 * reference.sf(abs(delta) / se))
    p_worse = float(reference.cdf((sign * delta + tolerance) / se))
    low, high = delta - half, delta + half
    return SeedTest(
        delta, low, high, p_value, p_worse, _verdict(sign, low, high), se, df, SEEDS_AND_INPUTS
    )


def _verdict(sign: float, low: float, high: float) -> str:
    """The 95% interval's verdict from the candidate's side (`sign` -1: lower is better)."""
    if low > 0:
        return "better" if sign > 0 else "worse"
    if high < 0:
        return "worse" if sign > 0 else "better"
    return "same"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): reject row i at family-wise level a when
    its adjusted p-value is below a. Controls the chance of any false rejection among the rows
    whatever their dependence."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [1.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def regressions(p_worse: Sequence[float]) -> list[tuple[float, bool]]:
    """Each row's Holm-adjusted one-sided p-value and whether it is a regression at the
    family-wise `ALPHA`: the gate's decision over every row of one run."""
    return [(p, p < ALPHA) for p in holm(p_worse)]
