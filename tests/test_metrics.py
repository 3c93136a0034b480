import pytest

from bench.metrics import score_all


def test_bleu_perfect_and_disjoint():
    refs = [["the cat sat on the mat", "a cat sat"], ["dogs bark loudly at night"]]
    perfect = score_all(["bleu"], ["the cat sat on the mat", "dogs bark loudly at night"], refs)
    assert perfect["bleu"] == pytest.approx(100.0)
    disjoint = score_all(["bleu"], ["xyz qqq", "www vvv"], refs)
    assert disjoint["bleu"] == pytest.approx(0.0)


def test_bleu_accepts_a_varying_number_of_references():
    refs = [["one two three four five"], ["six seven eight nine ten", "alpha beta gamma delta"]]
    value = score_all(["bleu"], ["one two three four five", "alpha beta gamma delta"], refs)
    assert value["bleu"] == pytest.approx(100.0)


def test_rouge_l_takes_the_best_reference():
    refs = [["completely different words here", "the cat sat on the mat"]]
    assert score_all(["rouge_l"], ["the cat sat on the mat"], refs)["rouge_l"] == pytest.approx(100)


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="2 hypotheses for 1 reference lists"):
        score_all(["bleu"], ["a", "b"], [["a"]])
