import pytest

from bench.metrics.suites import score_suite


def values(hypotheses, references):
    return {k: s.value for k, s in score_suite("mini", hypotheses, references).items()}


def test_bleu_perfect_and_disjoint():
    refs = [["the cat sat on the mat", "a cat sat"], ["dogs bark loudly at night"]]
    perfect = values(["the cat sat on the mat", "dogs bark loudly at night"], refs)
    assert perfect["bleu"] == pytest.approx(100.0)
    disjoint = values(["xyz qqq", "www vvv"], refs)
    assert disjoint["bleu"] == pytest.approx(0.0)


def test_bleu_accepts_a_varying_number_of_references():
    refs = [["one two three four five"], ["six seven eight nine ten", "alpha beta gamma delta"]]
    value = values(["one two three four five", "alpha beta gamma delta"], refs)
    assert value["bleu"] == pytest.approx(100.0)


def test_rouge_l_takes_the_best_reference():
    refs = [["completely different words here", "the cat sat on the mat"]]
    assert values(["the cat sat on the mat"], refs)["rouge_l"] == pytest.approx(100)


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="2 hypotheses for 1 reference lists"):
        values(["a", "b"], [["a"]])
