"""Metrics: each module registers `Metric`s into `bench.registry.METRICS`.

A metric scores a corpus of hypotheses against per-input reference lists (of varying length).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Scorer = Callable[[Sequence[str], Sequence[Sequence[str]]], float]


@dataclass(frozen=True)
class Metric:
    """A corpus-level metric; `scale` says how values print (e.g. 0-100 for sacrebleu BLEU)."""

    name: str
    description: str
    score: Scorer
    higher_is_better: bool = True
    scale: str = "0-100"


def score_all(
    names: Sequence[str], hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, float]:
    from bench.registry import METRICS

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference lists")
    return {name: METRICS.get(name).score(hypotheses, references) for name in names}
