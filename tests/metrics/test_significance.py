"""The gate's test over seeds, on synthetic scores with known answers: under the null it rejects
at its level, a real shift is found, and with no input noise it is Welch's (or the paired)
t-test as scipy computes it; Holm's adjustment as the procedure defines it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench.metrics import MeanMetric
from bench.metrics.significance import INPUTS_ONLY, holm, seed_test


class Scores(MeanMetric):
    """A metric whose segment scores are given: the stats are the scores themselves."""

    def segment_scores(self, hypotheses, references):
        return [float(h) for h in hypotheses]


METRIC = Scores()
N_INPUTS = 40


def run(rng: np.random.Generator, mean: float, inputs: np.ndarray) -> np.ndarray:
    """One seed's per-input scores: the test set's inputs, the seed's own effect, noise."""
    return (mean + inputs + rng.normal(0, 1.0) + rng.normal(0, 0.5, N_INPUTS))[:, None]


def rejection_rate(shift: float, seeds: int, paired: bool, trials: int = 300) -> float:
    rng = np.random.default_rng(7)
    inputs = rng.normal(0, 2.0, N_INPUTS)  # one test set: its inputs are hard or easy for all
    rejected = 0
    for trial in range(trials):
        base = [run(rng, 10.0, inputs) for _ in range(seeds)]
        cand = [run(rng, 10.0 - shift, inputs) for _ in range(seeds)]
        test = seed_test(METRIC, base, cand, paired=paired, n_resamples=200, seed=trial)
        rejected += test.p_worse < 0.05
    return rejected / trials


@pytest.mark.parametrize("paired", [False, True])
def test_under_the_null_it_rejects_at_its_level(paired):
    # 300 trials at a 5% level: a binomial count within about 3 standard deviations of 15.
    assert rejection_rate(0.0, seeds=3, paired=paired) <= 0.09


@pytest.mark.parametrize("paired", [False, True])
def test_a_shift_of_three_seed_deviations_is_found_with_five_seeds(paired):
    assert rejection_rate(3.0, seeds=5, paired=paired, trials=100) >= 0.9


def test_one_seed_a_side_cannot_see_seed_noise_and_says_so():
    rng = np.random.default_rng(0)
    inputs = rng.normal(0, 2.0, N_INPUTS)
    test = seed_test(METRIC, [run(rng, 10, inputs)], [run(rng, 10, inputs)], n_resamples=200)
    assert test.noise == INPUTS_ONLY and test.df == float("inf")


def constant(value: float) -> np.ndarray:
    """A seed that scores `value` on every input: resampling its inputs changes nothing."""
    return np.full((N_INPUTS, 1), value)


def test_without_input_noise_it_is_welchs_t_test():
    base, cand = [10.0, 12.5, 11.0, 9.0], [8.0, 9.5, 7.0]
    test = seed_test(METRIC, [constant(x) for x in base], [constant(x) for x in cand])
    reference = scipy_stats.ttest_ind(cand, base, equal_var=False)
    assert test.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert test.delta == pytest.approx(np.mean(cand) - np.mean(base))
    one_sided = scipy_stats.ttest_ind(cand, base, equal_var=False, alternative="less")
    assert test.p_worse == pytest.approx(one_sided.pvalue, rel=1e-9)
    low, high = reference.confidence_interval(0.95)
    assert (test.low, test.high) == (pytest.approx(low), pytest.approx(high))


def test_paired_without_input_noise_it_is_the_paired_t_test():
    base, cand = [10.0, 12.5, 11.0], [9.0, 12.0, 9.5]
    test = seed_test(METRIC, [constant(x) for x in base], [constant(x) for x in cand], paired=True)
    reference = scipy_stats.ttest_rel(cand, base)
    assert test.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert test.p_worse == pytest.approx(
        scipy_stats.ttest_rel(cand, base, alternative="less").pvalue, rel=1e-9
    )


def test_the_tolerance_moves_the_one_sided_test_only():
    base, cand = [10.0, 12.5, 11.0, 9.0], [8.0, 9.5, 7.0]
    seeds = [constant(x) for x in base], [constant(x) for x in cand]
    strict, tolerant = seed_test(METRIC, *seeds), seed_test(METRIC, *seeds, tolerance=5.0)
    assert strict.p_value == tolerant.p_value and strict.low == tolerant.low
    assert strict.p_worse < 0.05 < 0.9 < tolerant.p_worse


def test_lower_is_better_metrics_test_the_other_side():
    class Errors(Scores):
        higher_is_better = False

    base, cand = [10.0, 10.5, 9.5], [14.0, 14.5, 13.5]  # more errors: worse
    test = seed_test(Errors(), [constant(x) for x in base], [constant(x) for x in cand])
    assert test.verdict == "worse" and test.p_worse < 0.01


def test_holm_adjusts_as_the_step_down_procedure_does():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, kept monotone: 0.02, 0.03, 0.06, 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []


def test_holm_keeps_the_family_wise_error_rate_over_many_null_rows():
    rng = np.random.default_rng(3)
    any_rejected = sum(
        min(holm(list(rng.uniform(size=16)))) < 0.05 for _ in range(2000)
    )  # 16 true nulls per run; uncorrected, 56% of runs would reject something
    assert any_rejected / 2000 <= 0.06
