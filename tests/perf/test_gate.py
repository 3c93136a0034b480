"""`perf gate`'s simulation on synthetic pools with known answers: seeds of one method drawn
from one distribution raise no more false alarms than the gate's level allows, and predictions
cut to half their words are caught."""

from __future__ import annotations

import random

import numpy as np

from bench.perf.gate import cut, detection, false_alarms, gate_run, pool_of
from bench.results.bundle import CellResults, SplitOutputs, StoredScore

WORDS = [f"w{i}" for i in range(15)]
REFERENCES = [
    [" ".join(random.Random(f"ref{i}").choices(WORDS, k=random.Random(i).randint(6, 12)))]
    for i in range(50)
]


def seed_cell(seed: int, pool: str) -> CellResults:
    """A mini-e2e prefix cell whose quality varies by seed (training noise) and by input."""
    rng = random.Random(f"{pool}:{seed}")
    keep = 0.7 + rng.gauss(0, 0.04)
    predictions = [
        " ".join(w if rng.random() < keep else "xx" for w in refs[0].split()) for refs in REFERENCES
    ]
    config = {"task": "mini-e2e", "method": "prefix", "label": "prefix", "settings": {},
              "model": "mini", "n_train": None, "sample": 0, "seed": seed}  # fmt: skip
    score = StoredScore(0.5, ood=False, n=len(REFERENCES), low=None, high=None)
    sources = [f"in {i}" for i in range(len(REFERENCES))]
    return CellResults(
        id=f"{pool}{seed}", config=config, grids=["pool"], provenance={}, params={},
        scores={"test": {"bleu": score, "rouge_l": score}},
        outputs={"test": SplitOutputs(sources, predictions, REFERENCES)},
    )  # fmt: skip


def pool(name: str, seeds: int = 12) -> list[CellResults]:
    return [seed_cell(seed, name) for seed in range(seeds)]


def test_cut_keeps_the_first_part_of_each_prediction():
    (cell,) = pool("a", 1)
    half = cut(cell, 0.5).outputs["test"].predictions
    for whole, kept in zip(cell.outputs["test"].predictions, half, strict=True):
        words = whole.split()
        assert kept.split() == words[: (len(words) + 1) // 2]


def test_a_pool_against_itself_flags_nothing():
    same = pool_of("a", pool("a"))
    result = gate_run(same, same, [0, 1, 2], [0, 1, 2])
    assert len(result) == 2 and all(delta == 0 and not flag for _, delta, flag in result)


def test_unchanged_seeds_raise_few_false_alarms_and_a_halved_method_is_caught():
    one, two = pool_of("one", pool("one")), pool_of("two", pool("two"))
    rates = false_alarms([one, two], 3, 200, np.random.default_rng(0))
    assert len(rates) == 3  # other seeds in one pool; same and other seeds across the two
    assert all(rate["rate"] <= 0.06 for rate in rates.values()), rates
    halved = pool_of("cut", [cut(cell, 0.5) for cell in pool("one")])
    caught = detection(one, halved, "prefix", 5, 100, np.random.default_rng(1))
    assert caught["rate"] >= 0.9 and caught["bleu_drop"] > 5
