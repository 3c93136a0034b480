"""Bootstrap intervals and the paired bootstrap, on per-input statistics."""

from __future__ import annotations

import random

import pytest

from bench.metrics.bootstrap import paired_bootstrap, resample_indices
from bench.metrics.multibleu import MultiBleu
from bench.metrics.suites import compare_suite, score_suite
from bench.metrics.ter import Ter

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "rug", "red", "blue", "big"]


def corpus(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """References, and outputs that copy a random part of their first reference."""
    rng = random.Random(seed)
    refs, hyps = [], []
    for _ in range(n):
        ref = [rng.choice(WORDS) for _ in range(rng.randint(5, 12))]
        refs.append([" ".join(ref), " ".join(rng.sample(ref, len(ref)))])
        hyps.append(" ".join(w if rng.random() < 0.7 else rng.choice(WORDS) for w in ref))
    return hyps, refs


def test_resamples_are_seeded():
    assert (resample_indices(50, 10, seed=3) == resample_indices(50, 10, seed=3)).all()
    assert (resample_indices(50, 10, seed=3) != resample_indices(50, 10, seed=4)).any()
    assert resample_indices(50).shape == (1000, 50)


def test_interval_contains_the_value_and_is_deterministic():
    hyps, refs = corpus(120, seed=0)
    first = score_suite("mini", hyps, refs)
    again = score_suite("mini", hyps, refs)
    other_seed = score_suite("mini", hyps, refs, seed=1)
    for name, score in first.items():
        assert score.low < score.value < score.high, name
        assert (again[name].low, again[name].high) == (score.low, score.high)
        assert (other_seed[name].low, other_seed[name].high) != (score.low, score.high)
        assert other_seed[name].value == score.value


def test_without_bootstrap_there_is_no_interval():
    hyps, refs = corpus(10, seed=0)
    score = score_suite("mini", hyps, refs, bootstrap=False)["bleu"]
    assert score.value is not None and score.low is None and score.high is None


def test_subsets_of_statistics_score_like_the_subset_itself():
    """Sufficient statistics: WebNLG's seen/unseen scores come from rows of one computation."""
    hyps, refs = corpus(40, seed=2)
    bleu = MultiBleu(lowercase=True, pad_to=3)
    stats = bleu.segment_stats(hyps, refs)
    assert bleu.aggregate(stats[:15]) == pytest.approx(
        bleu.aggregate(bleu.segment_stats(hyps[:15], refs[:15]))
    )


def test_paired_bootstrap_calls_identical_systems_the_same():
    hyps, refs = corpus(80, seed=3)
    for name, comparison in compare_suite("mini", hyps, hyps, refs).items():
        assert comparison.verdict == "same", name
        assert comparison.delta == 0 and comparison.low == comparison.high == 0
        assert comparison.p_value == 1.0


def test_paired_bootstrap_sees_a_clearly_better_system_in_each_direction():
    hyps, refs = corpus(80, seed=4)
    perfect = [r[0] for r in refs]
    comparisons = compare_suite("mini", perfect, hyps, refs)
    assert {c.verdict for c in comparisons.values()} == {"better"}
    assert all(c.p_value < 0.05 and c.low > 0 for c in comparisons.values())
    assert compare_suite("mini", hyps, perfect, refs)["bleu"].verdict == "worse"
    # TER: lower is better, so fewer edits is still "better".
    ter = Ter()
    a, b = ter.segment_stats(perfect, refs), ter.segment_stats(hyps, refs)
    assert paired_bootstrap(ter, a, b).verdict == "better"
    assert paired_bootstrap(ter, a, b).delta < 0
    assert paired_bootstrap(ter, b, a).verdict == "worse"
